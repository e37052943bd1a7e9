/**
 * Labels of a host scan: the cgroup path and what it names (unit, container, pod), on this
 * machine's real /proc/self/cgroup and on /proc/PID/cgroup texts copied from real layouts
 * (each says which); the --include/--exclude forms; how a process is described.
 */
import t from 'tap';
import * as fs from 'node:fs';
import { cgroupNames, cgroupPath, gpuDevices, type ProcessLabels } from '../src/host/labels';
import { selected } from '../src/host/watch';
import { describeProcess, parseSelector } from '../src/cli/watch-all';
import { UsageError } from '../src/cli/args';

const ID = 'f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f';

/** /proc/PID/cgroup texts, each as the named layout writes it. */
const LAYOUTS: Array<{ layout: string; text: string; path: string; unit: string | null; container: string | null; pod: string | null }> = [
  {
    layout: 'systemd, cgroup v2 (Debian 12, Ubuntu 22.04): a service',
    text: '0::/system.slice/nginx.service\n',
    path: '/system.slice/nginx.service',
    unit: 'nginx.service',
    container: null,
    pod: null,
  },
  {
    layout: 'systemd, cgroup v2: a login session and a user service',
    text: '0::/user.slice/user-1000.slice/user@1000.service/app.slice/train.service\n',
    path: '/user.slice/user-1000.slice/user@1000.service/app.slice/train.service',
    unit: 'train.service',
    container: null,
    pod: null,
  },
  {
    layout: 'Docker with the systemd cgroup driver, cgroup v2',
    text: `0::/system.slice/docker-${ID}.scope\n`,
    path: `/system.slice/docker-${ID}.scope`,
    unit: null,
    container: `docker:${ID}`,
    pod: null,
  },
  {
    layout: 'Docker with the cgroupfs driver, cgroup v1 (hybrid: the v2 line at /)',
    text: `12:pids:/docker/${ID}\n11:memory:/docker/${ID}\n1:name=systemd:/docker/${ID}\n0::/\n`,
    path: `/docker/${ID}`,
    unit: null,
    container: `docker:${ID}`,
    pod: null,
  },
  {
    layout: 'Kubernetes, containerd, systemd driver, cgroup v2 (a burstable pod)',
    text: `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-${ID}.scope\n`,
    path: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-${ID}.scope`,
    unit: null,
    container: `containerd:${ID}`,
    pod: '0a1b2c3d-4e5f-6789-abcd-ef0123456789',
  },
  {
    layout: 'Kubernetes, cgroupfs driver, cgroup v1 (a guaranteed pod)',
    text: `11:memory:/kubepods/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/${ID}\n1:name=systemd:/kubepods/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/${ID}\n`,
    path: `/kubepods/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/${ID}`,
    unit: null,
    container: `container:${ID}`,
    pod: '0a1b2c3d-4e5f-6789-abcd-ef0123456789',
  },
  {
    layout: 'Kubernetes with CRI-O, systemd driver, cgroup v2',
    text: `0::/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/crio-${ID}.scope\n`,
    path: `/kubepods.slice/kubepods-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/crio-${ID}.scope`,
    unit: null,
    container: `crio:${ID}`,
    pod: '0a1b2c3d-4e5f-6789-abcd-ef0123456789',
  },
  {
    layout: 'Podman (rootful), cgroup v2',
    text: `0::/machine.slice/libpod-${ID}.scope/container\n`,
    path: `/machine.slice/libpod-${ID}.scope/container`,
    unit: null,
    container: `podman:${ID}`,
    pod: null,
  },
  {
    layout: 'LXC/Incus, cgroup v2',
    text: '0::/lxc.payload.web1/system.slice/nginx.service\n',
    path: '/lxc.payload.web1/system.slice/nginx.service',
    unit: 'nginx.service',
    container: 'lxc:web1',
    pod: null,
  },
  {
    layout: 'cgroup v1 only, no systemd (a container runtime sandbox: only the memory controller set)',
    text: '9:name=systemd:/\n8:pids:/\n4:memory:/process_api/c1939e6b1fdf649e60b04b0db5163b49\n1:cpu:/\n0::/\n',
    path: '/process_api/c1939e6b1fdf649e60b04b0db5163b49',
    unit: null,
    container: null,
    pod: null,
  },
  {
    layout: 'the root cgroup (a kernel thread, or a host without cgroups set up)',
    text: '0::/\n',
    path: '/',
    unit: null,
    container: null,
    pod: null,
  },
];

t.test('cgroup layouts: the path, and the unit, container and pod it names', async (t) => {
  for (const l of LAYOUTS) {
    const path = cgroupPath(l.text);
    t.equal(path, l.path, `${l.layout}: path`);
    t.same(cgroupNames(path), { unit: l.unit, container: l.container, pod: l.pod }, `${l.layout}: names`);
  }
  t.equal(cgroupPath(''), null, 'an empty file');
  t.equal(cgroupPath('garbage\n'), null, 'no hierarchy line');
  t.same(cgroupNames(null), { unit: null, container: null, pod: null });
});

t.test("this machine's /proc/self/cgroup", { skip: process.platform !== 'linux' && 'Linux /proc' }, async (t) => {
  const text = fs.readFileSync('/proc/self/cgroup', 'utf8');
  const path = cgroupPath(text);
  t.ok(path !== null && path.startsWith('/'), `a path: ${path}`);
  // Whatever it names, it names it from a segment of that path.
  const names = cgroupNames(path);
  for (const value of [names.unit]) if (value !== null) t.ok(path!.includes(value));
});

t.test('GPU device nodes among the open ones', async (t) => {
  t.same(
    gpuDevices(['/dev/null', '/dev/nvidia0', '/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/dri/renderD128', '/dev/kfd', '/dev/pts/0', '/dev/accel/accel0', '/dev/nvidia-caps/nvidia-cap1']),
    ['/dev/nvidia0', '/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/dri/renderD128', '/dev/kfd', '/dev/accel/accel0', '/dev/nvidia-caps/nvidia-cap1'],
  );
});

const labels = (over: Partial<ProcessLabels> = {}): ProcessLabels => ({
  pid: 4242,
  name: 'python3',
  uid: 1000,
  kernel: false,
  cgroup: '/system.slice/train.service',
  unit: 'train.service',
  container: null,
  pod: null,
  devices: ['/dev/null', '/dev/nvidia0'],
  ...over,
});

t.test('selected(): include one of, exclude none of; a cgroup is a path prefix or a unit or container name', async (t) => {
  const l = labels();
  t.ok(selected(l, [], []), 'no selectors: everything');
  t.ok(selected(l, [{ name: /^py/ }], []));
  t.notOk(selected(l, [{ name: /^java/ }], []));
  t.ok(selected(l, [{ name: /^java/ }, { uid: 1000 }], []), 'any include');
  t.notOk(selected(l, [{ name: /^py/, uid: 0 }], []), 'every field of one');
  t.notOk(selected(l, [], [{ uid: 1000 }]), 'excluded');
  t.ok(selected(l, [{ cgroup: '/system.slice' }], []), 'under a slice');
  t.notOk(selected(l, [{ cgroup: '/system.sl' }], []), 'a prefix of a segment is not a parent');
  t.ok(selected(l, [{ cgroup: 'train.service' }], []), 'by unit');
  const c = labels({ container: `docker:${ID}`, unit: null });
  t.ok(selected(c, [{ cgroup: ID }], []), 'by container id');
  t.ok(selected(c, [{ cgroup: `docker:${ID}` }], []), 'by container with its runtime');
  t.notOk(selected(labels({ cgroup: null, unit: null }), [{ cgroup: '/' }], []), 'no cgroup read: no cgroup selector matches');
});

t.test('--include/--exclude forms and the description of a process', async (t) => {
  t.same(parseSelector('name=^py', '--include'), { name: '^py' });
  t.same(parseSelector('^py', '--include'), { name: '^py' });
  t.same(parseSelector('cgroup=/system.slice', '--include'), { cgroup: '/system.slice' });
  t.same(parseSelector('uid=0', '--exclude'), { uid: 0 });
  t.throws(() => parseSelector('uid=x', '--exclude'), UsageError);
  t.throws(() => parseSelector('cgroup=', '--exclude'), /give a value after cgroup=/);
  t.throws(() => parseSelector('(', '--include'), /is not a regular expression/);
  t.equal(describeProcess(labels()), 'pid 4242 (python3, unit train.service, uid 1000, /dev/nvidia0)');
  t.equal(
    describeProcess(labels({ unit: null, container: `containerd:${ID}`, pod: 'abc', uid: null, devices: [] })),
    'pid 4242 (python3, container containerd:f0e1d2c3b4a59…, pod abc)',
  );
  t.equal(describeProcess(labels({ unit: null, container: 'lxc:web1', devices: [] })), 'pid 4242 (python3, container lxc:web1, uid 1000)');
  t.equal(describeProcess(labels({ unit: null, cgroup: '/process_api/x', devices: [] })), 'pid 4242 (python3, cgroup /process_api/x, uid 1000)');
  t.equal(describeProcess(labels({ name: 'kworker/0:1', unit: null, cgroup: '/', kernel: true, uid: 0, devices: [] })), 'pid 4242 (kworker/0:1, uid 0, kernel thread)');
});
