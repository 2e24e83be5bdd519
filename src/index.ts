// mvm's library entry point.
//   const mvm = await connect();              // starts the daemon if it is not running
//   await using vm = await mvm.run({ memory: "512M" });
//   const r = await vm.exec(["uname", "-r"], { onStdout: (b) => process.stdout.write(b) });
//   for await (const chunk of (await vm.spawn(["make"])).stdout()) process.stdout.write(chunk);
//   await vm.files.write("/root/data.bin", buffer); await vm.files.read("/etc/os-release");
export { connect, MvmClient, VmHandle, Command, GuestFiles, type ConnectOptions, type ExecRequestOptions, type SpawnOptions, type ExecStream, type SessionInfo, type DaemonInfo, type VmView, type VmSpecInput, type ExitEvent, type AttachEvent, type SnapshotView, type LimitsPatch, type VolumeView } from "./client/client.js";
export type { OutputChunk } from "./client/command.js";
export type { WriteOptions, WriteData, TransferResult } from "./client/files.js";
export { copyIn, copyOut, parseCopyArg, type CopyStats, type CopyOptions } from "./client/copy.js";
export type { FileEntry, FileType } from "./api/resource-schemas.js";
export { launchGuest, adoptGuest, Guest, type LaunchOptions, type BootTimeline, type QemuExit, type StopRung } from "./vm/launch.js";
export { ensureGuestArtifacts, type GuestArtifacts } from "./guest/artifacts.js";
export type { GuestConfig } from "./guest/config-file.js";
export { AgentClient, ExecSession, type ExecOptions, type ExecResult, type RunResult } from "./agent/client.js";
export type { Hello } from "./agent/messages.js";
export { chooseAccel, readHostFacts, type AccelChoice } from "./host/accel.js";
// The wire contract as TypeBox schemas (JSON Schema): what the API takes and answers.
export { VmSpecSchema, VmViewSchema, CheckedSpecSchema, AttachEventSchema, ExitEventSchema, DaemonInfoSchema } from "./api/vm-schemas.js";
export { ExecBodySchema, ExecResultSchema, ExecEventSchema, SessionInfoSchema, ErrorBodySchema } from "./api/command-schemas.js";
export { ImageViewSchema, NetworkViewSchema, VolumeViewSchema, VolumeCreateBodySchema, FileEntrySchema, TransferResultSchema } from "./api/resource-schemas.js";
export { HOST_ROOT, type Caller, type TokenRole } from "./auth/caller.js";
export { SnapshotViewSchema, SnapshotCreateBodySchema } from "./api/snapshot-schemas.js";
export { LimitsPatchSchema, AppliedLimitsSchema } from "./api/limit-schemas.js";
export type { VmState } from "./vm/state.js";
export * from "./errors.js";
