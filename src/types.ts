/**
 * The snapshot model `iokit-snap/1` (docs/ARCHITECTURE.md). A snapshot is one JSON
 * document; files written by one version load in the next, so fields are only
 * ever added, and added fields are optional.
 */

/** The JSON image of a CF/OSObject (or sysfs) property tree. */
export type PropertyValue =
  | string
  | number
  | boolean
  | null
  | { $data: string }
  | PropertyValue[]
  | { [key: string]: PropertyValue };

export type Platform = 'darwin' | 'linux';

export interface Host {
  platform: Platform;
  arch: string;
  osRelease: string;
  model?: string;
}

/** What could not be read, and why. A missing value is `null` plus one of these. */
export interface Limitation {
  /** What it is about: "accelerator 0x100000478", "pid 123", "thread 456", "nvml". */
  subject: string;
  /** What is missing: "blockedIn", "kernelStack", "utilization", "IOPowerManagement", … */
  field: string;
  /** EPERM, ETIMEDOUT, ENOTSUP, ENOENT, … */
  code: string;
  /** What happened. */
  reason: string;
  /** What to do about it, when something can be done. */
  hint?: string;
}

export interface BusyState {
  /** IOService busy count: registration, matching or termination in progress. Not GPU work. */
  count: number;
  /** Accumulated time the service was busy in that sense, in ns; null when not given. */
  timeNs: number | null;
}

export interface ServiceState {
  registered: boolean;
  matched: boolean;
  active: boolean;
}

export interface PowerState {
  /** macOS: CurrentPowerState index; Linux: PCI power_state ("D0", "D3hot", "D3cold"). */
  state: number | string;
  maxState: number | null;
  /** Present only during a transition on macOS; a persisting value means a stuck transition. */
  desiredState: number | null;
  capabilityFlags: number | null;
  /** Linux runtime PM status ("active", "suspended", …); macOS: null. */
  runtimeStatus: string | null;
  /** macOS IOPowerManagement.MachineState, present only during a transition. */
  machineState?: number | null;
  /** NVIDIA performance state P0…P15, when NVML gives it. */
  performanceState?: number | null;
  /** Board power draw in milliwatts, when known. */
  drawMilliwatts?: number | null;
}

export interface Utilization {
  devicePercent: number | null;
  rendererPercent: number | null;
  tilerPercent: number | null;
}

export interface MemoryUse {
  inUseBytes: number | null;
  allocatedBytes: number | null;
}

export interface Recovery {
  count: number;
  lastTime: number | null;
}

export interface WorkQueue {
  id: number;
  submitted: number;
  finished: number;
  state: string;
}

export interface Accelerator {
  /** macOS: registry entry id "0x100000478"; Linux: PCI address "0000:01:00.0". */
  id: string;
  name: string;
  /** macOS: the IOKit class; Linux: the bound driver ("" when none). */
  className: string;
  /** macOS: most-derived first … OSObject; Linux: ['pci', class code]. */
  classChain: string[];
  vendor: string | null;
  model: string | null;
  /** IOServiceGetBusyStateAndTime: registration/matching/termination in progress, not GPU work. */
  busy: BusyState | null;
  serviceState: ServiceState | null;
  power: PowerState | null;
  probeScore: number | null;
  utilization: Utilization | null;
  memory: MemoryUse | null;
  recovery: Recovery | null;
  queues: WorkQueue[] | null;
  /** Optional additions (added fields stay optional for older readers). */
  location?: string | null;
  retainCount?: number | null;
  /** Whether the driver accepts command submission (AGX CommandSubmissionEnabled). */
  commandSubmissionEnabled?: boolean | null;
  /** Device nodes that reach this device: /dev/dri/card0, /dev/dri/renderD128, /dev/nvidia0, /dev/accel/accel0. */
  deviceNodes?: string[];
  /** NVML health: GPU lost / reset required, when NVML answers. */
  health?: { gpuLost: boolean | null; resetRequired: boolean | null } | null;
  /** The raw property tree, only when asked for (includeProperties). */
  properties?: Record<string, PropertyValue>;
}

export interface Frame {
  /** The return address; null when an imported report does not print it, or prints one above 2^53 (kernel addresses; the text keeps it). */
  pc: number | null;
  module: string | null;
  /**
   * Where the pc is in its module; null when the source does not say. macOS: pc − the
   * image's load address. Linux: the address in the ELF file (what `addr2line -e MODULE`
   * takes), or the offset in the file where the file could not be read.
   */
  offset: number | null;
  /** The function, when known (imported reports name it; Linux live stacks from the ELF symbol tables; macOS live stacks do not symbolize). */
  symbol?: string | null;
  /** Bytes into the symbol ("__psynch_cvwait + 8", "mutex_lock+0x34/0x40"). */
  symbolOffset?: number | null;
  /** The line as the report printed it, so nothing is lost. */
  text?: string;
  /** Linux: a `?` frame, a stale return address the unwinder could not confirm. */
  unreliable?: boolean;
  /** Go: a call inlined at this pc (no frame of its own; the next frame is the function it was inlined into, same pc). */
  inlined?: boolean;
  /** sample/spindump: how many samples were in this frame. */
  samples?: number;
}

export type ThreadState =
  | 'running'
  | 'runnable'
  | 'sleeping'
  | 'waiting'
  | 'uninterruptible'
  | 'stopped'
  | 'halted'
  | 'zombie'
  | 'unknown';

export interface BlockedIn {
  /** Syscall or Mach trap name ("futex", "mach_msg2_trap"), or "syscall_N" when unnamed. */
  call: string;
  /** The syscall number; -1 when an imported report names the call but not its number. */
  number: number;
  /** The GPU driver the wait is inside, from a stack: "nvidia_uvm", "amdgpu", "AMDRadeonX5000MTLDriver". */
  driver?: string;
  /**
   * Who made the call, from a stack: on macOS the user-space entry ("IOConnectCallMethod",
   * "-[_MTLCommandBuffer waitUntilCompleted]"); on Linux the kernel function that waits ("uvm_gpu_retain_by_uuid").
   */
  via?: string;
  /** The kernel lock or wait primitive, from a kernel stack: "mutex_lock", "dma_fence_wait_timeout". */
  lock?: string;
  fd?: number;
  /** What the fd points at: "/dev/nvidia0", "/dev/dri/renderD128", a fifo path, "pipe:[123]". */
  target?: string;
  /**
   * Linux: the tid of the thread this one joins. glibc's pthread_join waits in futex on
   * the joined thread's tid word, expecting its tid; such a wait is judged by that thread.
   */
  joining?: number;
  /**
   * Linux futex waits: the futex word's address, the operation (without the PRIVATE and
   * CLOCK_REALTIME flags: 'wait', 'wait_bitset', 'lock_pi', 'lock_pi2', 'wait_requeue_pi';
   * futex2's futex_wait reads as 'wait_bitset') and the value it expects. glibc's mutex sleeps in
   * 'wait' expecting 2 (locked, with waiters), as the Go runtime's own locks do; glibc's condition
   * variables, semaphores and joins sleep in 'wait_bitset'. Threads on one address wait on one
   * lock or condition.
   */
  futex?: { address: number; op: string; value: number };
  /** Linux, snapshot(): who is at the other end of the pipe, fifo or socket `target` names (src/peer.ts). */
  peer?: Peer;
}

/**
 * The other end of a pipe, fifo or socket that a thread is blocked on. pipe: the processes
 * holding the other end (the write end for a reader, the read end for a writer; the
 * thread's own process when it holds both). tcp: the addresses, and the process owning
 * the peer socket when that is in this host's (the thread's) network namespace. unix: the
 * bound path only; /proc does not name the peer (a `limits` entry says so).
 */
export interface Peer {
  kind: 'pipe' | 'tcp' | 'unix';
  /** tcp: "127.0.0.1:5432", "[::1]:80"; unix: the socket's bound path ("@name" for an abstract one), when bound. */
  local?: string;
  /** tcp: the remote address. */
  remote?: string;
  /**
   * The processes found holding the other end: those in the snapshot, or else the first
   * found outside it (nearest pid first), so an end inherited by more processes may have
   * holders not listed. Absent when none was found (see `limits`) or none can be (unix, a remote host).
   */
  pids?: PeerProcess[];
  /** Whether all of `pids` were sampled in the same snapshot (their threads are in it). */
  sampled?: boolean;
  /** tcp: `pids` hold the listening socket, and the connection waits in its accept queue, not yet accepted. */
  queued?: boolean;
  /**
   * The thread waits in poll or select, which names no fd: this is the other end of its
   * process's only connection (a client with no listening socket), what it most likely waits on.
   */
  inferred?: boolean;
}

export interface PeerProcess {
  pid: number;
  name: string;
}

export interface ThreadSample {
  /** macOS: thread_identifier_info.thread_id; Linux: tid. */
  tid: number;
  /** Linux: the comm bytes; a byte that is not well-formed UTF-8 is written \xHH and a backslash \\, so names stay distinct and recoverable. */
  name: string | null;
  state: ThreadState;
  userNs: number;
  systemNs: number;
  contextSwitches: { voluntary: number; involuntary: number } | null;
  suspendCount: number | null;
  blockedIn: BlockedIn | null;
  /** Linux: ns on CPU from schedstat, finer than userNs + systemNs (clock ticks). */
  cpuNs?: number;
  /** Linux: ns it was runnable but waited for a CPU (schedstat's run delay, field 2). */
  runDelayNs?: number;
  /**
   * Linux: ns since the thread last ran on a CPU, from this one sample: the scheduler
   * clock now minus the clock when it last ran (`se.exec_start` of
   * /proc/<pid>/task/<tid>/sched, against the same clock now, on the CPU it last ran on).
   * Good to a few ms, and short of the wall time by what its CPU spent in interrupts or
   * lost to a hypervisor meanwhile (see docs/ARCHITECTURE.md). 0 for a thread in state running:
   * Linux's R is also a runnable thread queued for a CPU, which is not waiting on
   * anything of its own (its wait for a CPU is `runDelayNs`), so it reads 0 too.
   * Absent at detail 'basic', where the kernel has no sched file (a `limits` entry
   * names it), and, from a reused sampler (watch, serve), for a thread that ran since
   * the previous sample: it made progress inside the interval, which its CPU time shows.
   */
  offCpuNs?: number;
  /** Linux: the kernel function the thread sleeps in (wchan), when readable. */
  wchan?: string;
  pc?: number;
  stack?: Frame[];
  /** Linux /proc/<pid>/task/<tid>/stack, when readable (root); an imported report's kernel frames as printed. */
  kernelStack?: string[];
  /** Kernel frames parsed (imported reports: spindump `*` frames, a hung_task Call Trace), innermost first. */
  kernelFrames?: Frame[];
  /** Imported reports: the report marks this as the process's main thread (live samples list it first instead). */
  main?: boolean;
  /** Imported reports: the dispatch queue the thread was serving. */
  queue?: string;
  /** sample/spindump: in how many samples the report saw the thread. */
  samples?: number;
  /**
   * Imported reports: how long the report proves the thread sat where its stack shows, ms
   * (every sample over the sampled time; hung_task's "blocked for more than N seconds").
   * A lower bound; null when the report does not prove it.
   */
  heldMs?: number | null;
  /** spindump: whom the thread waits for ("blocked by turnstile waiting for NAME [PID] thread 0x…"). */
  blockedBy?: { pid: number | null; tid: number | null; name: string | null; text: string };
}

/**
 * Linux: the system-call table a process numbers its calls in. A 64-bit kernel also runs
 * 32-bit processes (i386 on x86_64, arm32 on arm64), whose numbers mean other calls;
 * "kernel" is a kernel thread, which has no user space and so no blocking call.
 */
export type ProcessAbi = 'x86_64' | 'i386' | 'x32' | 'arm64' | 'arm32' | 'kernel';

export interface ProcessSample {
  pid: number;
  name: string;
  /** Monotonic ns (same clock as Snapshot.monotonicNs). */
  sampledAtNs: number;
  /** Linux: which syscall table named its calls (read from its executable's ELF header); absent when not read (detail 'basic'). */
  abi?: ProcessAbi;
  /** Linux: the parent process's pid (from stat): a wait for a child is judged by the children. */
  ppid?: number;
  /**
   * snapshot({ peers: true }): sampled because a thread of this pid waits on it (it holds the
   * other end of a pipe or socket). It is judged as a process that is not expected to exit.
   */
  peerOf?: number;
  threads: ThreadSample[];
  /** Imported reports: what the report itself says about the sampling and the process. */
  report?: ReportFacts;
  /** Linux, a Go program: its Go version from the binary ("go1.19.8"), when goroutines were asked for. */
  goVersion?: string | null;
  /**
   * Linux, a Go program, when asked for (`goroutines: true`): its goroutines, read from its
   * memory (src/runtimes/go.ts). Absent for a program that is not Go, and when they could
   * not be read (a limit with field `goroutines` says why).
   */
  goroutines?: GoroutineSample[];
}

/**
 * A goroutine's state (runtime/runtime2.go `_G*`; the `_Gscan` bit, set while the GC scans
 * it, is left out). `waiting`: parked (gopark) with a wait reason; `runnable`: in a run
 * queue; `running`: on a thread now; `syscall`: in a system call on its thread;
 * `preempted`: stopped by the runtime (suspendG); `dead` goroutines are not listed.
 */
export type GoroutineStatus =
  | 'idle'
  | 'runnable'
  | 'running'
  | 'syscall'
  | 'waiting'
  | 'moribund'
  | 'dead'
  | 'enqueue'
  | 'copystack'
  | 'preempted'
  | 'unknown';

/** One goroutine, as runtime.Stack would print it (`goroutine 7 [semacquire]:` and its frames). */
export interface GoroutineSample {
  /** The goroutine id ("goroutine N" in Go's own dumps). */
  goid: number;
  status: GoroutineStatus;
  /**
   * Why a `waiting` goroutine waits, the runtime's own words (runtime.waitReasonStrings):
   * "semacquire" (sync.Mutex, RWMutex, WaitGroup and Cond before Go 1.24, which says
   * "sync.Mutex.Lock", "sync.WaitGroup.Wait", …), "chan receive", "chan send", "select",
   * "select (no cases)", "IO wait" (the netpoller: a socket read/accept), "sleep",
   * "GC worker (idle)", "sync.Cond.Wait", "force gc (idle)", … null when not waiting.
   */
  waitReason: string | null;
  /**
   * Monotonic ns (the clock of ProcessSample.sampledAtNs) from which the runtime knows it
   * waited: set only when a GC ran while it was blocked (g.waitsince), so a lower bound
   * of the wait: it waited at least `sampledAtNs − waitSinceNs`. null when unset.
   */
  waitSinceNs: number | null;
  /** A runtime goroutine (its start function is in package runtime, not runtime.main): GC workers, the scavenger, finalizers. runtime.Stack leaves these out. */
  system: boolean;
  /** The function it was started with ("main.worker", "net/http.(*conn).serve"); null when it cannot be named. */
  start: string | null;
  /** The `go` statement that created it (one frame); null for the main goroutine. */
  createdBy: Frame | null;
  /** The thread (Linux tid) it runs on: only for `running` and `syscall` goroutines. */
  tid?: number;
  /**
   * Its frames, innermost first, from the registers the scheduler saved when it parked
   * (g.sched) along Go's frame pointers; a call inlined at a pc is a frame of its own
   * (`inlined`), as in runtime.Stack. A deadlocked goroutine reads
   * runtime.gopark ← runtime.goparkunlock (inlined) ← runtime.semacquire1 ←
   * sync.runtime_SemacquireMutex ← sync.(*Mutex).lockSlow ← sync.(*Mutex).Lock (inlined)
   * ← main.worker. Empty for a `running` goroutine (its frames are on its thread's
   * stack); one frame (its call's) for one in a system call.
   */
  frames: Frame[];
}

export interface GoroutineOptions {
  /** Goroutines read at most, in creation order (default 20000); the rest is a limit. */
  maxGoroutines?: number;
  /** Physical frames per goroutine at most (default 16). */
  maxFrames?: number;
  /** Deadline for the whole read, ms (default 5000). */
  timeoutMs?: number;
  /** Read this tree instead of /proc (its exe and auxv; memory is always the live process's). */
  procRoot?: string;
}

/** sampleGoroutines(): null goroutines for a program that is not Go (no limit) or that could not be read (a limit says why). */
export interface GoroutineSampleResult {
  pid: number;
  goVersion: string | null;
  goroutines: GoroutineSample[] | null;
  limits: Limitation[];
}

/** The formats importReport() reads. */
export type ReportFormat = 'sample' | 'spindump' | 'crash' | 'lldb' | 'hung-task';

/** What an imported report says about one process, beyond its threads. */
export interface ReportFacts {
  format: ReportFormat;
  /** sample/spindump: samples taken of the process. */
  samples: number | null;
  /** The time the samples cover, ms (spindump "Duration"; sample: samples × interval, a lower bound). */
  sampledMs: number | null;
  /** spindump: "process was unresponsive for N seconds before sampling", ms. */
  unresponsiveMs: number | null;
  /** The report's own notes: spindump "Note: Unresponsive", "Event: hang", a hung_task "Workqueue:" line. */
  notes: string[];
  /** sample: "Sort by top of stack", the innermost frames and their sample counts, heaviest first. */
  topOfStack?: { symbol: string; module: string | null; samples: number }[];
}

export interface Snapshot {
  format: 'iokit-snap/1';
  takenAt: string;
  monotonicNs: number;
  host: Host;
  accelerators: Accelerator[];
  processes: ProcessSample[];
  limits: Limitation[];
  /** Set when the snapshot was imported from a report (importReport); it has no monotonic clock then. */
  source?: { format: ReportFormat; lines: number };
}

export interface AcceleratorOptions {
  /** Attach the raw property tree to each accelerator. */
  includeProperties?: boolean;
  /** Linux: read this tree instead of /sys (fixture trees in tests). */
  sysRoot?: string;
  /** Linux: query NVML for NVIDIA devices (default true). */
  nvml?: boolean;
  /** Linux: the NVML library to dlopen (default "libnvidia-ml.so.1"). */
  nvmlLibrary?: string;
  /** Deadline for the whole probe, ms (default 5000). */
  timeoutMs?: number;
  /** Deadline for each call that can block inside the probe (NVML, IOPowerManagement), ms (default 2000). */
  callTimeoutMs?: number;
}

export interface AcceleratorSample {
  accelerators: Accelerator[];
  limits: Limitation[];
}

export interface ThreadOptions {
  /** 'basic': state and CPU time only (what ps shows); 'full' (default): everything. */
  detail?: 'basic' | 'full';
  /**
   * User stacks. macOS: each thread suspended for its walk. Linux: each thread held by
   * ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT) for the copy of its registers and stack,
   * then walked by the binaries' unwind tables or frame pointers and named from their
   * symbol tables; see docs/ARCHITECTURE.md for what the target sees.
   */
  stacks?: boolean;
  /** Linux kernel stacks from /proc/<pid>/task/<tid>/stack when readable (default true). */
  kernelStacks?: boolean;
  /** Read this tree instead of /proc. */
  procRoot?: string;
  maxStackDepth?: number;
  /**
   * Sampler: how many fds it may keep open, at most. Whatever this says, all the samplers of
   * one program share one budget, half of RLIMIT_NOFILE (default: that budget alone).
   */
  maxOpenFiles?: number;
  /**
   * Sample only these threads (at most 4,096 thread ids), each once, in the order given:
   * with `stacks`, the user stacks of just those. A tid that is not (or no longer) a
   * thread of the process is left out of the result, no error. Linux reads only their
   * files (the cost grows with the tids, not the process's threads; stacks read the
   * memory map once). macOS samples every thread and keeps these (a suspend per thread
   * for stacks all the same).
   */
  tids?: number[];
  /** Deadline for the probe, ms (default 10000). */
  timeoutMs?: number;
}

/** A ProcessSample with what could not be read. */
export interface ThreadSampleResult extends ProcessSample {
  limits: Limitation[];
}

export interface ThreadSampler {
  readonly pid: number;
  sample(): Promise<ThreadSampleResult>;
  close(): void;
}

export interface SnapshotOptions extends AcceleratorOptions {
  pids?: number[];
  threads?: Omit<ThreadOptions, 'timeoutMs'>;
  /** Skip accelerators (threads only). */
  accelerators?: boolean;
  /**
   * Also sample the processes on this host at the other end of the pipes, fifos and sockets
   * the sampled threads wait on (one step: not their own peers; at most 16), so that a wait on
   * another process can be judged by that process. Default false.
   */
  peers?: boolean;
  /** Linux: the goroutines of Go programs among `pids` (ProcessSample.goroutines), read from their memory. */
  goroutines?: boolean;
}
