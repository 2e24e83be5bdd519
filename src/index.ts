// mvm's library entry point.
export { launchGuest, Guest, type LaunchOptions, type BootTimeline, type QemuExit } from "./guest/launch.js";
export { ensureGuestArtifacts, type GuestArtifacts } from "./guest/artifacts.js";
export type { GuestConfig } from "./guest/config-file.js";
export { AgentClient, ExecSession, type ExecOptions, type ExecResult, type RunResult } from "./agent/client.js";
export type { Hello } from "./agent/messages.js";
export { chooseAccel, readHostFacts, type AccelChoice } from "./host/accel.js";
export * from "./errors.js";
