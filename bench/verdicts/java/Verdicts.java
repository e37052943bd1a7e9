/*
 * JVM programs in known states for bench/verdicts.js and test/verdicts-*.test.ts.
 *
 *   java Verdicts idle-http        a com.sun.net.httpserver server on 127.0.0.1:0 with a fixed
 *                                  thread pool as its executor, and a second, idle
 *                                  ExecutorService; every pool thread has run a task and now
 *                                  parks waiting for the next; main returns (the launcher's
 *                                  primordial thread waits for the JVM to end)
 *   java Verdicts deadlock         two threads each hold one monitor and wait for the other
 *                                  (jstack: "Found one Java-level deadlock"); the JVM's GC and
 *                                  periodic threads keep running; main joins the first
 *   java Verdicts batch SECS CODE  computes on two threads for SECS seconds, then exits CODE
 *
 * Each mode prints one line, "ready pid=N key=value...", once it is in place.
 */
import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public final class Verdicts {
  private static void ready(String extra) {
    System.out.println("ready pid=" + ProcessHandle.current().pid() + extra);
    System.out.flush();
  }

  private static void idleHttp() throws Exception {
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 16);
    server.createContext("/", exchange -> {
      byte[] body = "ok\n".getBytes();
      exchange.sendResponseHeaders(200, body.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(body);
      }
    });
    server.setExecutor(Executors.newFixedThreadPool(4));
    server.start();
    int port = server.getAddress().getPort();
    // Every thread of both pools runs a task once, so that each exists and idles in its queue.
    ExecutorService jobs = Executors.newFixedThreadPool(4);
    List<Future<?>> done = new ArrayList<>();
    for (int i = 0; i < 8; i++) done.add(jobs.submit(() -> Math.sqrt(System.nanoTime())));
    for (Future<?> f : done) f.get();
    HttpClient client = HttpClient.newHttpClient();
    List<java.util.concurrent.CompletableFuture<HttpResponse<String>>> replies = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      replies.add(client.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/")).build(), HttpResponse.BodyHandlers.ofString()));
    }
    for (java.util.concurrent.CompletableFuture<HttpResponse<String>> r : replies) r.get();
    ready(" port=" + port);
  }

  private static final Object first = new Object();
  private static final Object second = new Object();

  private static void deadlock() throws Exception {
    CountDownLatch holding = new CountDownLatch(2);
    Thread a = new Thread(() -> take(first, second, holding), "lock-a-then-b");
    Thread b = new Thread(() -> take(second, first, holding), "lock-b-then-a");
    a.start();
    b.start();
    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    while (threads.findMonitorDeadlockedThreads() == null) Thread.sleep(20);
    ready(" deadlocked=" + threads.findMonitorDeadlockedThreads().length);
    a.join();
  }

  private static void take(Object one, Object other, CountDownLatch holding) {
    synchronized (one) {
      holding.countDown();
      try {
        holding.await();
      } catch (InterruptedException e) {
        return;
      }
      synchronized (other) {
        System.out.println("unreachable");
      }
    }
  }

  private static volatile byte[] sink;

  private static void batch(double seconds, int code) throws Exception {
    long end = System.nanoTime() + (long) (seconds * 1e9);
    Runnable work = () -> {
      try {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        byte[] block = new byte[4096];
        while (System.nanoTime() < end) {
          block = java.util.Arrays.copyOf(sha.digest(block), 4096);
          sink = block;
        }
      } catch (Exception e) {
        throw new RuntimeException(e);
      }
    };
    Thread other = new Thread(work, "batch-worker");
    other.start();
    ready(" seconds=" + seconds);
    work.run();
    other.join();
    System.exit(code);
  }

  public static void main(String[] args) throws Exception {
    String mode = args.length > 0 ? args[0] : "";
    switch (mode) {
      case "idle-http" -> idleHttp();
      case "deadlock" -> deadlock();
      case "batch" -> batch(args.length > 1 ? Double.parseDouble(args[1]) : 8, args.length > 2 ? Integer.parseInt(args[2]) : 0);
      default -> {
        System.err.println("usage: java Verdicts idle-http | deadlock | batch SECS CODE");
        System.exit(2);
      }
    }
  }
}
