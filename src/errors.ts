// The error tree. Every error mvm raises is an MvmError carrying a stable code, a hint that says how to fix
// it, and the details a person needs (the input, the state, the tail of QEMU's output...). Each class
// names its code, HTTP status and default hint as statics; the API answers with that status and the body
// { error, message, hint, details }, and the client rebuilds the same class from it (errorFromBody), so
// `err instanceof WrongStateError` works for library users. docs/api.md has the table of codes.
//
// MvmError (MVM_ERROR 500: a code this client does not know)
// ├─ InternalError                INTERNAL 500                a bug in mvm
// ├─ BadRequestError              BAD_REQUEST 400             errors/input.ts: what was asked is wrong
// │  ├─ InvalidArgumentError      INVALID_ARGUMENT 400
// │  ├─ InvalidSpecError          INVALID_SPEC 400
// │  ├─ InvalidSizeError          INVALID_SIZE 400
// │  ├─ InvalidKernelError        INVALID_KERNEL 400
// │  ├─ InvalidPortError          INVALID_PORT 400
// │  ├─ InvalidStorageError       INVALID_STORAGE 400
// │  ├─ InvalidSubnetError        INVALID_SUBNET 400
// │  ├─ GuestConfigError          INVALID_GUEST_CONFIG 400
// │  ├─ QemuOptionValueError      INVALID_QEMU_VALUE 400
// │  ├─ InvalidImageError         INVALID_IMAGE 400
// │  ├─ CopyError                 COPY_FAILED 400
// │  └─ errors/http.ts: refused before any route runs
// │     RouteNotFoundError UNKNOWN_ROUTE 404, RequestTimeoutError REQUEST_TIMEOUT 408,
// │     BodyTooLargeError BODY_TOO_LARGE 413, UriTooLongError URI_TOO_LONG 414,
// │     UnsupportedMediaTypeError UNSUPPORTED_MEDIA_TYPE 415, HeadersTooLargeError HEADERS_TOO_LARGE 431
// ├─ errors/resources.ts: what mvm keeps
// │  NotFoundError NOT_FOUND 404, NameTakenError NAME_TAKEN 409, AddressTakenError ADDRESS_TAKEN 409,
// │  PortInUseError PORT_IN_USE 409, DiskInUseError DISK_IN_USE 409, WrongStateError WRONG_STATE 409,
// │  MemoryInUseError MEMORY_IN_USE 409
// ├─ errors/access.ts: who may do what (src/auth/)
// │  ForbiddenError FORBIDDEN 403 (└─ HostPathForbiddenError HOST_PATH_FORBIDDEN 403),
// │  UnauthorizedError UNAUTHORIZED 401, QuotaExceededError QUOTA_EXCEEDED 429
// ├─ errors/host.ts: what this host can do
// │  NotRootError NOT_ROOT 403, HostNetworkError HOST_NETWORK 403, KvmUnusableError KVM_UNUSABLE 422,
// │  BinaryUnusableError QEMU_UNUSABLE 422, CgroupsUnavailableError CGROUPS_UNAVAILABLE 422, QemuNotFoundError QEMU_NOT_FOUND 424,
// │  GuestBuildError GUEST_BUILD 424, ImageToolError IMAGE_BUILD_FAILED 424, HostDiskFullError HOST_DISK_FULL 507
// ├─ errors/daemon.ts: the daemon as clients see it
// │  DaemonAlreadyRunningError DAEMON_ALREADY_RUNNING 409, DaemonStartError DAEMON_START_FAILED 503,
// │  DaemonNotRunningError DAEMON_NOT_RUNNING 503, DaemonDisconnectedError DAEMON_DISCONNECTED 502
// ├─ errors/vm.ts: the running VM (QEMU, QMP, the agent)
// │  BootError BOOT_FAILED 502, QmpCommandError QMP_ERROR 502, QmpDisconnectedError QMP_DISCONNECTED 502,
// │  AgentNotConnectedError AGENT_NOT_CONNECTED 503, AgentDisconnectedError VM_GONE 502
// │  (└─ AgentRestartedError AGENT_RESTARTED 502), AgentProtocolError AGENT_PROTOCOL 502,
// │  TimeoutError TIMEOUT 504, AbortError ABORTED 499
// └─ errors/guest.ts: inside the guest
//    CommandFailedError COMMAND_FAILED 422 (└─ CommandTimedOutError COMMAND_TIMED_OUT 504),
//    IntegrityError INTEGRITY 502, GuestFileError FILE_ERROR 400 (├─ FileNotFoundError FILE_NOT_FOUND 404,
//    ├─ FileExistsError FILE_EXISTS 409, └─ GuestDiskFullError GUEST_DISK_FULL 507; see guestFileError)

export * from "./errors/base.js";
export * from "./errors/input.js";
export * from "./errors/http.js";
export * from "./errors/resources.js";
export * from "./errors/access.js";
export * from "./errors/host.js";
export * from "./errors/daemon.js";
export * from "./errors/vm.js";
export * from "./errors/guest.js";
export { errorClassFor, errorClasses, errorFromBody, type ErrorBody } from "./errors/registry.js";
