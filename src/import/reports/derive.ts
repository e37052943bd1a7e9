/**
 * What a stack proves about where a thread waits: the call its innermost frame is in,
 * the GPU driver on the path, the user-space entry that made the call, and the kernel
 * lock it sleeps on. The names follow the live readers' (the BSD syscall table on
 * macOS, the syscall name on Linux), so an imported thread and a sampled one compare.
 */
import type { BlockedIn, Frame, ThreadState } from '../../types';

/** macOS syscall stubs keep these leading underscores in the syscall table; the rest drop them. */
const KEEPS_UNDERSCORES = /^__(?:semwait_signal|sigwait|pthread_|disable_threadsignal|mac_)/;

/** libsystem_kernel stubs that are waits (a trap or a syscall), by their symbol. */
function callOfStub(symbol: string): string {
  if (KEEPS_UNDERSCORES.test(symbol)) return symbol;
  return symbol.replace(/^_+/, '');
}

/** Calls that block a thread: a thread whose innermost frame is one of these is waiting, not running. */
const WAITS = /^(?:mach_msg\d?_trap|mach_msg_overwrite_trap|semaphore_(?:timed)?wait(?:_signal)?_trap|psynch_|__semwait_signal|__sigwait|ulock_wait|workq_kernreturn|kevent|select|pselect|poll|read|write|recvfrom|recvmsg|sendmsg|accept|connect|wait4|waitid|ioctl|pread|pwrite|fsync|open|close|flock|fcntl|nanosleep|sigsuspend|thread_suspend|iokit_user_client_trap)/;

/** User-space images of GPU drivers on macOS (Metal drivers, the AGX/Intel/AMD bundles). */
const DARWIN_GPU_IMAGE = /(?:MTLDriver|GLDriver|AGXMetal|AGXGL|IntelAccelerator|AMDRadeon|GeForce|IOAccel|AppleIntel\w*Graphics|AppleM\d\w*Graphics)/;

/** The IOKit user-client path: how a driver call leaves user space. */
const IOKIT_ENTRY = /^(?:IOConnectCall\w*|IOConnectTrap\d|io_connect_\w+|IOAccel\w*|iokit_user_client_trap)$/;

/** Metal or OpenGL waiting for the GPU: the entry that says the wait is on the GPU. */
const GPU_WAIT_ENTRY = /(?:MTLCommandBuffer|MTLCommandQueue|MTLIOAccel|waitUntilCompleted|waitUntilScheduled|IOAccelCommandQueue|glFinish|CGLFlushDrawable|MTLDevice)/;

/** Linux kernel modules of GPU and accelerator drivers, the driver itself first, then the helpers it calls into. */
const LINUX_GPU_DRIVER = /^(?:nvidia(?:_uvm|_drm|_modeset|_peermem)?|nouveau|amdgpu|amdkfd|radeon|i915|xe|msm|panfrost|panthor|lima|v3d|vc4|etnaviv|mali\w*|kgsl|habanalabs|ivpu|qaic)$/;
const LINUX_GPU_HELPER = /^(?:drm|drm_kms_helper|ttm|gpu_sched|amd_sched|amdkcl|drm_exec|drm_ttm_helper)$/;
/** Built-in drivers print no [module]: their symbol prefix says whose they are. */
const LINUX_GPU_PREFIX: [RegExp, string][] = [
  [/^uvm_/, 'nvidia_uvm'],
  [/^(?:nv_|nvkm_|_nv\d)/, 'nvidia'],
  [/^(?:amdgpu_|amd_sched_|amddrm_)/, 'amdgpu'],
  [/^(?:kfd_|amdkfd_)/, 'amdkfd'],
  [/^radeon_/, 'radeon'],
  [/^nouveau_/, 'nouveau'],
  [/^(?:i915_|intel_gt_)/, 'i915'],
  [/^xe_/, 'xe'],
  [/^(?:drm_sched_|drm_)/, 'drm'],
  [/^ttm_/, 'ttm'],
];

/** Kernel frames that are the scheduler itself, not a reason to wait. */
const SCHEDULER = /^(?:__schedule|schedule|schedule_preempt_disabled|schedule_timeout|io_schedule|io_schedule_timeout|preempt_schedule\w*|__switch_to\w*|context_switch|finish_task_switch\w*)$/;

/** Kernel wait primitives: what a D-state thread sleeps on. */
const KERNEL_WAIT = /^(?:(?:__)?mutex_lock\w*|ww_mutex_lock\w*|__ww_mutex_lock\w*|down|down_\w+|__down\w*|rwsem_down_\w+|wait_for_completion\w*|dma_fence_wait\w*|dma_fence_default_wait|kcl_fence_default_wait|wait_on_page_bit\w*|folio_wait_bit\w*|__wait_on_bit\w*|__lock_page\w*|sleep_on_page\w*|synchronize_srcu|synchronize_rcu\w*|flush_work|flush_workqueue|__flush_work|wait_event\w*|__wait_event\w*)$/;

/** Syscall entry frames on Linux: `__x64_sys_ioctl`, `SyS_ioctl`, `__arm64_sys_openat`, `ksys_ioctl`. */
const LINUX_SYSCALL_ENTRY = /^(?:__(?:x64|ia32|arm64|riscv|s390x)_sys_|__se_sys_|__do_sys_|SyS_|sys_|ksys_)(\w+)$/;

function symbolOf(frame: Frame): string {
  return frame.symbol ?? '';
}

/** "__mutex_lock.constprop.0" → "__mutex_lock": compiler clones keep the name before the dot. */
function baseSymbol(frame: Frame): string {
  const symbol = frame.symbol as string; // kernel trace frames always name their function
  const dot = symbol.indexOf('.');
  return dot > 0 ? symbol.slice(0, dot) : symbol;
}

export function linuxGpuDriverOf(frame: Frame): string | null {
  if (frame.module !== null && (LINUX_GPU_DRIVER.test(frame.module) || LINUX_GPU_HELPER.test(frame.module))) return frame.module;
  const symbol = baseSymbol(frame);
  for (const [prefix, driver] of LINUX_GPU_PREFIX) if (prefix.test(symbol)) return driver;
  return null;
}

/** The GPU driver a kernel stack runs in: the innermost frame of a driver, else of a helper (drm, ttm, gpu_sched). */
function linuxDriver(frames: Frame[]): string | undefined {
  let helper: string | undefined;
  for (const frame of frames) {
    const driver = linuxGpuDriverOf(frame);
    if (driver === null) continue;
    if (!LINUX_GPU_HELPER.test(driver)) return driver;
    helper ??= driver;
  }
  return helper;
}

/** A Linux task from a hung_task or sysrq-w report: its kernel stack is all the report has. */
export function linuxBlockedIn(kernelFrames: Frame[]): BlockedIn | null {
  // A `?` frame is a stale address; use them only when the unwinder confirmed none.
  const reliable = kernelFrames.filter((f) => !f.unreliable);
  const frames = reliable.length > 0 ? reliable : kernelFrames;
  if (frames.length === 0) return null;
  let lock: string | undefined;
  let waiter: string | undefined;
  let syscall: string | undefined;
  for (const frame of frames) {
    const symbol = baseSymbol(frame);
    if (waiter === undefined) {
      if (SCHEDULER.test(symbol)) continue;
      // The outermost wait primitive of the run above the scheduler is the one its caller chose (mutex_lock, not __mutex_lock_slowpath).
      if (KERNEL_WAIT.test(symbol)) {
        lock = symbol;
        continue;
      }
      waiter = symbol;
    }
    const entry = LINUX_SYSCALL_ENTRY.exec(symbol);
    if (entry !== null) {
      syscall = entry[1];
      break;
    }
  }
  const call = syscall ?? waiter ?? lock ?? baseSymbol(frames[0]);
  const blocked: BlockedIn = { call, number: -1 };
  const driver = linuxDriver(frames);
  if (driver !== undefined) blocked.driver = driver;
  if (waiter !== undefined && waiter !== call) blocked.via = waiter;
  if (lock !== undefined) blocked.lock = lock;
  return blocked;
}

/** A macOS thread: its innermost user frame, when that is a libsystem_kernel stub or a trap. */
export function darwinBlockedIn(stack: Frame[]): BlockedIn | null {
  // An unsymbolized innermost frame (`???`) says nothing about the call.
  const top = stack[0];
  if (top === undefined) return null;
  const symbol = symbolOf(top);
  const inKernelLibrary = top.module !== null && /libsystem_kernel/.test(top.module);
  if (!inKernelLibrary && !/_trap$/.test(symbol)) return null;
  const blocked: BlockedIn = { call: callOfStub(symbol), number: -1 };
  const entry = driverEntry(stack);
  if (entry.via !== undefined) blocked.via = entry.via;
  if (entry.driver !== undefined) blocked.driver = entry.driver;
  return blocked;
}

/** Frames close to the wait that say it is a driver call: IOConnectCallMethod, a Metal wait, a GPU driver's user library. */
export function driverEntry(stack: Frame[]): { via?: string; driver?: string } {
  const depth = Math.min(stack.length, 12);
  let iokit: string | undefined;
  let other: string | undefined;
  let driver: string | undefined;
  for (let i = 0; i < depth; i++) {
    const frame = stack[i];
    const name = symbolOf(frame);
    if (/^IOConnect/.test(name) && (iokit === undefined || !/^IOConnect/.test(iokit))) iokit = name;
    else if (iokit === undefined && IOKIT_ENTRY.test(name)) iokit = name;
    else if (other === undefined && GPU_WAIT_ENTRY.test(name)) other = name;
    if (driver === undefined && frame.module !== null && DARWIN_GPU_IMAGE.test(frame.module)) driver = frame.module;
  }
  const via = iokit ?? other;
  return { ...(via !== undefined ? { via } : {}), ...(driver !== undefined ? { driver } : {}) };
}

/** The state a stack implies when the report does not say: a thread in a wait is waiting. */
export function stateOf(blocked: BlockedIn | null): ThreadState {
  if (blocked === null) return 'unknown';
  return WAITS.test(blocked.call) ? 'waiting' : 'unknown';
}

/** Is the call inside a GPU driver or on the IOKit user-client path (IOConnectCallMethod)? */
export function onDriverPath(blocked: BlockedIn | null): boolean {
  return blocked !== null && (blocked.driver !== undefined || (blocked.via !== undefined && IOKIT_ENTRY.test(blocked.via)));
}

/** Is the call a Metal/OpenGL wait for the GPU (a command buffer, a command queue's submission slot)? */
export function isGpuWait(via: string | undefined): boolean {
  return via !== undefined && GPU_WAIT_ENTRY.test(via);
}
