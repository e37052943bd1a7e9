{
  # scripts/asan.sh builds with GYP_DEFINES=iokit_snap_asan=1: AddressSanitizer.
  "variables": {"iokit_snap_asan%": 0},
  "targets": [
    {
      "target_name": "iokit_snap",
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "sources": [
        "native/node/addon.cc",
        "native/node/probe.cc",
        "native/node/to_js.cc",
        "native/blocking.cc",
        "native/darwin_decode.cc",
        "native/fd_budget.cc",
        "native/backend_unsupported.cc"
      ],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      # While an environment shuts down (process.exit, a Worker terminating) JS cannot
      # run and napi_throw fails; without this, node-addon-api turns that failure into a
      # C++ exception that escapes the callback and aborts the whole process.
      "defines": ["NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/linux/host.cc",
            "native/linux/threads.cc",
            "native/linux/accelerators.cc",
            "native/linux/pci_sysfs.cc",
            "native/linux/pci_amdgpu.cc",
            "native/linux/nvml_api.cc",
            "native/linux/nvml_session.cc",
            "native/linux/nvml_context.cc",
            "native/linux/procfs_files.cc",
            "native/linux/unix_peers.cc",
            "native/linux/host_scan.cc",
            "native/linux/procfs_parse.cc",
            "native/linux/procfs_thread.cc",
            "native/linux/sched_clock.cc",
            "native/linux/elf_file.cc",
            "native/linux/elf_cfi.cc",
            "native/node/elf_internals_linux.cc",
            "native/linux/elf_inflate.cc",
            "native/linux/elf_gopclntab.cc",
            "native/linux/stack_walk.cc",
            "native/linux/user_stacks.cc",
            "native/linux/memory.cc"
          ],
          "libraries": ["-ldl", "-lpthread"]
        }],
        ["OS=='linux' and iokit_snap_asan==1", {
          "cflags_cc": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address"]
        }],
        ["OS=='mac'", {
          "sources": [
            "native/darwin/accelerators.cc",
            "native/darwin/cf_property.cc",
            "native/darwin/dyld_images.cc",
            "native/darwin/host.cc",
            "native/darwin/registers.cc",
            "native/darwin/stacks.cc",
            "native/darwin/threads.cc"
          ],
          "libraries": ["-framework IOKit", "-framework CoreFoundation"],
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "CLANG_CXX_LIBRARY": "libc++",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-Wall", "-Wextra"]
          }
        }]
      ],
      # node_addon_api_except's direct_dependent_settings set MACOSX_DEPLOYMENT_TARGET
      # 10.7, and gyp merges them over this target's own xcode_settings. 10.7 predates
      # libc++'s bad_optional_access (macOS 10.13), so std::optional::value() does not
      # build for x86_64 there. Target conditions are applied after dependent settings,
      # so this one wins: macOS 11, the first with Apple silicon, for both architectures.
      "target_conditions": [
        ["OS=='mac'", {
          "xcode_settings": {"MACOSX_DEPLOYMENT_TARGET": "11.0"}
        }]
      ]
    }
  ]
}
