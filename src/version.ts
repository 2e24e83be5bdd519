// mvm's version: the daemon reports it, the CLI prints it (mvm --version). Kept equal to package.json's
// by a unit test.
export const VERSION = "0.1.0";
