// Test-only stand-in for <mach/mach.h>: exactly the types, constants and calls
// native/darwin uses, with the SDK's names and values (MacOSX 14.2 SDK), served by
// the fake kernel (test/darwin-logic/fake_kernel.cc). Struct layouts keep the
// fields the code reads, not Apple's padding: nothing here crosses a real ABI.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int kern_return_t;
typedef unsigned int natural_t;
typedef int integer_t;
typedef natural_t mach_port_t;
typedef natural_t mach_port_name_t;
typedef mach_port_t task_t;
typedef mach_port_t thread_act_t;
typedef mach_port_t ipc_space_t;
typedef mach_port_t task_suspension_token_t;
typedef thread_act_t* thread_act_array_t;
typedef natural_t mach_msg_type_number_t;
typedef uintptr_t vm_address_t;
typedef uintptr_t vm_size_t;
typedef uint64_t mach_vm_address_t;
typedef uint64_t mach_vm_size_t;
typedef integer_t* thread_info_t;
typedef integer_t* task_info_t;
typedef natural_t* thread_state_t;
typedef int policy_t;
typedef natural_t thread_flavor_t;
typedef natural_t task_flavor_t;
typedef int thread_state_flavor_t;

#define KERN_SUCCESS 0
#define KERN_INVALID_ADDRESS 1
#define KERN_PROTECTION_FAILURE 2
#define KERN_INVALID_ARGUMENT 4
#define KERN_FAILURE 5
#define KERN_INVALID_NAME 15
#define KERN_INVALID_RIGHT 17
#define KERN_TERMINATED 37
#define MACH_SEND_INVALID_DEST 0x10000003

#define MACH_PORT_NULL ((mach_port_t)0)
#define MACH_PORT_DEAD ((mach_port_t)~0u)
#define MACH_PORT_VALID(name) (((name) != MACH_PORT_NULL) && ((name) != MACH_PORT_DEAD))

struct time_value {
  integer_t seconds;
  integer_t microseconds;
};
typedef struct time_value time_value_t;

#define THREAD_BASIC_INFO 3
struct thread_basic_info {
  time_value_t user_time;
  time_value_t system_time;
  integer_t cpu_usage;
  policy_t policy;
  integer_t run_state;
  integer_t flags;
  integer_t suspend_count;
  integer_t sleep_time;
};
typedef struct thread_basic_info thread_basic_info_data_t;
#define THREAD_BASIC_INFO_COUNT ((mach_msg_type_number_t)(sizeof(thread_basic_info_data_t) / sizeof(natural_t)))

#define THREAD_IDENTIFIER_INFO 4
struct thread_identifier_info {
  uint64_t thread_id;
  uint64_t thread_handle;
  uint64_t dispatch_qaddr;
};
typedef struct thread_identifier_info thread_identifier_info_data_t;
#define THREAD_IDENTIFIER_INFO_COUNT \
  ((mach_msg_type_number_t)(sizeof(thread_identifier_info_data_t) / sizeof(natural_t)))

#define THREAD_EXTENDED_INFO 5
#define MAXTHREADNAMESIZE 64
struct thread_extended_info {
  uint64_t pth_user_time;
  uint64_t pth_system_time;
  int32_t pth_cpu_usage;
  int32_t pth_policy;
  int32_t pth_run_state;
  int32_t pth_flags;
  int32_t pth_sleep_time;
  int32_t pth_curpri;
  int32_t pth_priority;
  int32_t pth_maxpriority;
  char pth_name[MAXTHREADNAMESIZE];
};
typedef struct thread_extended_info thread_extended_info_data_t;
#define THREAD_EXTENDED_INFO_COUNT \
  ((mach_msg_type_number_t)(sizeof(thread_extended_info_data_t) / sizeof(natural_t)))

#define TASK_DYLD_INFO 17
#define TASK_DYLD_ALL_IMAGE_INFO_32 0
#define TASK_DYLD_ALL_IMAGE_INFO_64 1
struct task_dyld_info {
  mach_vm_address_t all_image_info_addr;
  mach_vm_size_t all_image_info_size;
  integer_t all_image_info_format;
};
typedef struct task_dyld_info task_dyld_info_data_t;
#define TASK_DYLD_INFO_COUNT ((mach_msg_type_number_t)(sizeof(task_dyld_info_data_t) / sizeof(natural_t)))

#define MACH_TASK_BASIC_INFO 20
struct mach_task_basic_info {
  mach_vm_size_t virtual_size;
  mach_vm_size_t resident_size;
  mach_vm_size_t resident_size_max;
  time_value_t user_time;
  time_value_t system_time;
  policy_t policy;
  integer_t suspend_count;
};
typedef struct mach_task_basic_info mach_task_basic_info_data_t;
#define MACH_TASK_BASIC_INFO_COUNT \
  ((mach_msg_type_number_t)(sizeof(mach_task_basic_info_data_t) / sizeof(natural_t)))

// Register files of both architectures: the harness is built once per architecture
// (-D__arm64__ for the arm64 one), as the addon is.
#define ARM_THREAD_STATE64 6
typedef struct {
  uint64_t __x[29];
  uint64_t __fp;
  uint64_t __lr;
  uint64_t __sp;
  uint64_t __pc;
  uint32_t __cpsr;
  uint32_t __pad;
} arm_thread_state64_t;
#define ARM_THREAD_STATE64_COUNT ((mach_msg_type_number_t)(sizeof(arm_thread_state64_t) / sizeof(natural_t)))
// The SDK's accessors hand back the raw (on arm64e, possibly signed) values.
#define arm_thread_state64_get_pc(ts) ((ts).__pc)
#define arm_thread_state64_get_lr(ts) ((ts).__lr)
#define arm_thread_state64_get_sp(ts) ((ts).__sp)
#define arm_thread_state64_get_fp(ts) ((ts).__fp)

#define x86_THREAD_STATE64 4
typedef struct {
  uint64_t __rax, __rbx, __rcx, __rdx, __rdi, __rsi, __rbp, __rsp;
  uint64_t __r8, __r9, __r10, __r11, __r12, __r13, __r14, __r15;
  uint64_t __rip, __rflags, __cs, __fs, __gs;
} x86_thread_state64_t;
#define x86_THREAD_STATE64_COUNT ((mach_msg_type_number_t)(sizeof(x86_thread_state64_t) / sizeof(natural_t)))

mach_port_t mach_task_self(void);
mach_port_t mach_thread_self(void);
kern_return_t task_for_pid(mach_port_t target_tport, int pid, mach_port_t* t);
kern_return_t task_threads(task_t target_task, thread_act_array_t* act_list, mach_msg_type_number_t* act_listCnt);
kern_return_t task_info(task_t target_task, task_flavor_t flavor, task_info_t task_info_out,
                        mach_msg_type_number_t* task_info_outCnt);
kern_return_t thread_info(thread_act_t target_act, thread_flavor_t flavor, thread_info_t thread_info_out,
                          mach_msg_type_number_t* thread_info_outCnt);
kern_return_t thread_get_state(thread_act_t target_act, thread_state_flavor_t flavor, thread_state_t old_state,
                               mach_msg_type_number_t* old_stateCnt);
kern_return_t thread_suspend(thread_act_t target_act);
kern_return_t thread_resume(thread_act_t target_act);
kern_return_t task_suspend2(task_t target_task, task_suspension_token_t* suspend_token);
kern_return_t task_resume2(task_suspension_token_t suspend_token);
kern_return_t mach_port_deallocate(ipc_space_t task, mach_port_t name);
kern_return_t vm_deallocate(mach_port_t target_task, vm_address_t address, vm_size_t size);
kern_return_t mach_vm_read_overwrite(mach_port_t target_task, mach_vm_address_t address, mach_vm_size_t size,
                                     mach_vm_address_t data, mach_vm_size_t* outsize);

#ifdef __cplusplus
}
#endif
