// Entry point of uvfio_native: the few system calls Node lacks.
#include "common.h"

namespace uvfio {

napi_value Init(napi_env env, napi_value exports) {
  InitErrors(env, exports);  // first: it sets up the per-instance data
  InitSocket(env, exports);
  InitEventfd(env, exports);
  InitMemory(env, exports);
  InitWatcher(env, exports);
  InitNotify(env, exports);
  InitFileIo(env, exports);
  return exports;
}

}  // namespace uvfio

NAPI_MODULE(NODE_GYP_MODULE_NAME, uvfio::Init)
