// RAII owners for every macOS handle the backend touches: IOKit objects, CF
// objects, Mach send rights, the task_threads array, a thread or task suspension. Each
// releases exactly what it owns, once, on every path; none is copyable.
#pragma once

#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOKitLib.h>
#include <mach/mach.h>

#include <cstddef>
#include <utility>

namespace iokitsnap {
namespace darwin {

// An io_object_t (service, iterator, registry entry) this code holds a reference to.
class ScopedIOObject {
 public:
  ScopedIOObject() = default;
  explicit ScopedIOObject(io_object_t object) : object_(object) {}  // takes over the reference
  ScopedIOObject(ScopedIOObject&& other) noexcept : object_(other.release()) {}
  ScopedIOObject& operator=(ScopedIOObject&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ScopedIOObject(const ScopedIOObject&) = delete;
  ScopedIOObject& operator=(const ScopedIOObject&) = delete;
  ~ScopedIOObject() { reset(); }

  // A second reference to `object`, for a worker thread that may outlive the caller.
  static ScopedIOObject Retain(io_object_t object) {
    if (object != IO_OBJECT_NULL) IOObjectRetain(object);
    return ScopedIOObject(object);
  }

  io_object_t get() const { return object_; }
  explicit operator bool() const { return object_ != IO_OBJECT_NULL; }
  io_object_t* receive() {  // for out-parameters
    reset();
    return &object_;
  }
  io_object_t release() { return std::exchange(object_, IO_OBJECT_NULL); }
  void reset(io_object_t object = IO_OBJECT_NULL) {
    if (object_ != IO_OBJECT_NULL) IOObjectRelease(object_);
    object_ = object;
  }

 private:
  io_object_t object_ = IO_OBJECT_NULL;
};

// A CF object obtained under the Create/Copy rule (this code owns one reference).
template <typename T>
class ScopedCFType {
 public:
  ScopedCFType() = default;
  explicit ScopedCFType(T object) : object_(object) {}  // takes over the reference
  ScopedCFType(ScopedCFType&& other) noexcept : object_(other.release()) {}
  ScopedCFType& operator=(ScopedCFType&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ScopedCFType(const ScopedCFType&) = delete;
  ScopedCFType& operator=(const ScopedCFType&) = delete;
  ~ScopedCFType() { reset(); }

  T get() const { return object_; }
  explicit operator bool() const { return object_ != nullptr; }
  T* receive() {
    reset();
    return &object_;
  }
  T release() { return std::exchange(object_, nullptr); }
  void reset(T object = nullptr) {
    if (object_ != nullptr) CFRelease(object_);
    object_ = object;
  }

 private:
  T object_ = nullptr;
};

// A send right in this task's port space (a task port, a thread port).
class ScopedMachSendRight {
 public:
  ScopedMachSendRight() = default;
  explicit ScopedMachSendRight(mach_port_t port) : port_(port) {}
  ScopedMachSendRight(ScopedMachSendRight&& other) noexcept : port_(other.release()) {}
  ScopedMachSendRight& operator=(ScopedMachSendRight&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  ScopedMachSendRight(const ScopedMachSendRight&) = delete;
  ScopedMachSendRight& operator=(const ScopedMachSendRight&) = delete;
  ~ScopedMachSendRight() { reset(); }

  mach_port_t get() const { return port_; }
  explicit operator bool() const { return MACH_PORT_VALID(port_); }
  mach_port_t* receive() {
    reset();
    return &port_;
  }
  mach_port_t release() { return std::exchange(port_, MACH_PORT_NULL); }
  void reset(mach_port_t port = MACH_PORT_NULL) {
    // A dead name (the target exited) is still a right to give back.
    if (MACH_PORT_VALID(port_)) mach_port_deallocate(mach_task_self(), port_);
    port_ = port;
  }

 private:
  mach_port_t port_ = MACH_PORT_NULL;
};

// The result of task_threads(): an array vm_allocate'd into this task holding one
// send right per thread. Both the rights and the array are given back.
class ScopedThreadList {
 public:
  ScopedThreadList() = default;
  ScopedThreadList(const ScopedThreadList&) = delete;
  ScopedThreadList& operator=(const ScopedThreadList&) = delete;
  ~ScopedThreadList() { reset(); }

  kern_return_t Load(task_t task) {
    reset();
    return task_threads(task, &threads_, &count_);
  }
  size_t size() const { return count_; }
  thread_act_t operator[](size_t i) const { return threads_[i]; }

 private:
  void reset() {
    if (threads_ == nullptr) return;
    for (mach_msg_type_number_t i = 0; i < count_; ++i) {
      if (MACH_PORT_VALID(threads_[i])) mach_port_deallocate(mach_task_self(), threads_[i]);
    }
    vm_deallocate(mach_task_self(), reinterpret_cast<vm_address_t>(threads_), count_ * sizeof(threads_[0]));
    threads_ = nullptr;
    count_ = 0;
  }

  thread_act_array_t threads_ = nullptr;
  mach_msg_type_number_t count_ = 0;
};

// One thread held suspended for as long as this object lives; resumed on every path.
class ScopedThreadSuspension {
 public:
  explicit ScopedThreadSuspension(thread_act_t thread) : thread_(thread), result_(thread_suspend(thread)) {}
  ScopedThreadSuspension(const ScopedThreadSuspension&) = delete;
  ScopedThreadSuspension& operator=(const ScopedThreadSuspension&) = delete;
  ~ScopedThreadSuspension() {
    if (result_ == KERN_SUCCESS) thread_resume(thread_);
  }
  kern_return_t result() const { return result_; }

 private:
  thread_act_t thread_;
  kern_return_t result_;
};

// Another task held suspended as a whole for as long as this object lives, through
// task_suspend2 (osfmk/kern/task.c): it places one hold (the task's user_stop_count,
// which MACH_TASK_BASIC_INFO shows) and hands back a send-once right to the task's
// resume port, the token. The hold ends exactly once, by one mechanism: this object
// deallocates the token, and xnu turns the death of that send-once right into the
// resume (ipc_notify_send_once_and_unlock → ipc_kobject_notify_send_once_and_unlock →
// task_suspension_send_once → release_task_hold), synchronously, in this call. The same
// happens when this process dies with the token (its IPC space is torn down), so the
// hold ends even if we are SIGKILLed mid-walk; thread_suspend holds have no such owner
// and outlive their caller. task_resume2 is not used: its message consumes the token
// whenever it is sent, whatever the server answers (ipc_kobject_server releases the
// request's destination right), so a second release after a failed task_resume2 would
// free a name that is gone, or by then someone else's. (task_suspension_no_senders, the
// resume port's no-senders notification, releases only legacy task_suspend holds.)
// task_suspend2 can succeed with a null token: the task went inactive between the hold
// and the conversion of the token (convert_task_suspension_token_to_port gives IP_NULL
// for an inactive task), so the process is exiting and nothing is held for us: held()
// is false. Not for our own task: it would stop the thread that holds it.
class ScopedTaskSuspension {
 public:
  explicit ScopedTaskSuspension(task_t task) : result_(task_suspend2(task, &token_)) {}
  ScopedTaskSuspension(const ScopedTaskSuspension&) = delete;
  ScopedTaskSuspension& operator=(const ScopedTaskSuspension&) = delete;
  ~ScopedTaskSuspension() {
    // A dead name (the task died while held) is still a reference to give back.
    if (MACH_PORT_VALID(token_)) mach_port_deallocate(mach_task_self(), token_);
  }
  kern_return_t result() const { return result_; }
  bool held() const { return result_ == KERN_SUCCESS && MACH_PORT_VALID(token_); }

 private:
  task_suspension_token_t token_ = MACH_PORT_NULL;
  kern_return_t result_;
};

}  // namespace darwin
}  // namespace iokitsnap
