{
  "targets": [
    {
      "target_name": "uvfio_native",
      "sources": [
        "native/addon.cc",
        "native/common.cc",
        "native/socket.cc",
        "native/eventfd.cc",
        "native/memory.cc",
        "native/watcher.cc",
        "native/answer.cc",
        "native/notify.cc",
        "native/file-io.cc"
      ],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
    }
  ]
}
