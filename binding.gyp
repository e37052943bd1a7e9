{
  "targets": [
    {
      "target_name": "iokit_snap",
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "sources": [
        "native/addon.cc",
        "native/blocking.cc",
        "native/darwin_decode.cc",
        "native/backend_unsupported.cc"
      ],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/linux/host.cc",
            "native/linux/threads.cc",
            "native/linux/procfs_files.cc",
            "native/linux/procfs_parse.cc",
            "native/linux/procfs_thread.cc",
            "native/linux/accelerators.cc"
          ],
          "libraries": ["-ldl", "-lpthread"]
        }],
        ["OS=='mac'", {
          "sources": [
            "native/darwin/host.cc"
          ],
          "libraries": ["-framework IOKit", "-framework CoreFoundation"],
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "CLANG_CXX_LIBRARY": "libc++",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-Wall", "-Wextra"]
          }
        }]
      ]
    }
  ]
}
