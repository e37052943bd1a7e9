/**
 * What a responder needs to know of a process found by a host scan, besides its pid and name:
 * the systemd unit or the container it runs in (from its cgroup path), its uid, and the GPU
 * device nodes it has open. Read once, when the scan first finds the process (never while it
 * is sampled: /proc/PID/cgroup may wait for the kernel's cgroup mutex).
 */

/** A process of a host scan, as a responder names it. */
export interface ProcessLabels {
  pid: number;
  /** The kernel's name for it (comm, 15 bytes at most). */
  name: string;
  /** The real uid; null when it could not be read. */
  uid: number | null;
  /** A kernel thread: judged by the D-state rule alone. */
  kernel: boolean;
  /**
   * Its cgroup path: the cgroup v2 path ("0::" line), else the systemd hierarchy's
   * ("name=systemd"), else the first controller's that is not "/". null when unreadable.
   */
  cgroup: string | null;
  /** The systemd unit the path ends in ("nginx.service", "session-3.scope"), or null. */
  unit: string | null;
  /** The container the path names: "docker:<id>", "containerd:<id>", "crio:<id>", "podman:<id>", "lxc:<name>", or null. */
  container: string | null;
  /** Kubernetes: the pod's uid from a kubepods path, or null. */
  pod: string | null;
  /** Device nodes it had open when found (sorted); GPU ones are those gpuDevices() picks. */
  devices: string[];
}

/** The device nodes of GPU drivers: NVIDIA, DRM (render and card nodes), AMD KFD, Habana, Intel Gaudi, accel. */
const GPU_NODE = /^\/dev\/(nvidia[\w-]*|nvidia-caps\/.*|dri\/.*|kfd|accel\/.*|hl\d+|hl_controlD\d+|davinci\d+|neuron\d+)$/;

export function gpuDevices(devices: readonly string[]): string[] {
  return devices.filter((d) => GPU_NODE.test(d));
}

/** The path that names the process's place: v2's, else systemd's, else the first controller's not at the root. */
export function cgroupPath(text: string): string | null {
  let v2: string | null = null;
  let systemd: string | null = null;
  let other: string | null = null;
  for (const line of text.split('\n')) {
    // hierarchy-ID:controller-list:cgroup-path; the path may hold ':' itself.
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) continue;
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (id === '0' && controllers === '') v2 = path;
    else if (controllers === 'name=systemd') systemd = path;
    else if (other === null && path !== '/') other = path;
  }
  // A hybrid host's v2 line may be "/" while the v1 hierarchies say where the process is.
  if (v2 !== null && v2 !== '/') return v2;
  if (systemd !== null && systemd !== '/') return systemd;
  return other ?? v2 ?? systemd;
}

const HEX_ID = /^[0-9a-f]{64}$/;

/** The unit, container and pod a cgroup path names (systemd, Docker, containerd, CRI-O, Podman, LXC, Kubernetes layouts). */
export function cgroupNames(path: string | null): { unit: string | null; container: string | null; pod: string | null } {
  let unit: string | null = null;
  let container: string | null = null;
  let pod: string | null = null;
  if (path === null) return { unit, container, pod };
  for (const segment of path.split('/')) {
    if (segment === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^docker-([0-9a-f]{64})\.scope$/.exec(segment)) !== null) container = `docker:${m[1]}`;
    else if ((m = /^cri-containerd-([0-9a-f]{64})\.scope$/.exec(segment)) !== null) container = `containerd:${m[1]}`;
    else if ((m = /^crio-([0-9a-f]{64})\.scope$/.exec(segment)) !== null) container = `crio:${m[1]}`;
    else if ((m = /^libpod-([0-9a-f]{64})\.scope$/.exec(segment)) !== null) container = `podman:${m[1]}`;
    else if ((m = /^lxc\.payload\.(.+)$/.exec(segment)) !== null) container = `lxc:${m[1]}`;
    else if ((m = /^kubepods(?:-[a-z]+)*-pod([0-9a-f_]{36})\.slice$/.exec(segment)) !== null) pod = m[1].replace(/_/g, '-');
    else if ((m = /^pod([0-9a-f-]{36})$/.exec(segment)) !== null) pod = m[1];
    else if (HEX_ID.test(segment)) container = container ?? `container:${segment}`; // cgroupfs driver: /docker/<id>, /kubepods/…/pod…/<id>
    else if (/\.(service|scope)$/.test(segment)) unit = segment;
  }
  if (container !== null && container.startsWith('container:')) {
    // The cgroupfs driver names the runtime by the directory above: /docker/<id>.
    const id = container.slice('container:'.length);
    if (path.includes(`/docker/${id}`)) container = `docker:${id}`;
  }
  return { unit, container, pod };
}
