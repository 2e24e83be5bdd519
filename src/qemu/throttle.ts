// Disk limits over QMP: QEMU's I/O throttling (block_set_io_throttle) on each virtio-blk device of a VM,
// all in one throttle group, so a limit is shared by the VM's disks rather than granted to each. It needs no
// change to the block graph or argv (templates, pooled QEMUs and saved states are unaffected), applies to
// a parked QEMU before its state is loaded, and can be changed on a running or paused guest. All zeros
// turn a device's throttling off and take it out of the group.

import { blockDeviceId } from "./microvm-argv.js";
import type { QmpClient } from "./qmp-client.js";

/** The throttle group of a VM's disks. */
export const throttleGroup = (vmId: string): string => `vm-${vmId}`;

/** block_set_io_throttle's arguments for one device: totals only (reads and writes together), 0 = none. */
export function throttleArguments(deviceId: string, group: string, l: { diskBps?: number; diskIops?: number }): Record<string, unknown> {
  return { id: deviceId, bps: l.diskBps ?? 0, bps_rd: 0, bps_wr: 0, iops: l.diskIops ?? 0, iops_rd: 0, iops_wr: 0, group };
}

/** Sets (or with neither limit, clears) the disk limits of the VM's `disks` virtio-blk devices; returns their ids. */
export async function setDiskThrottle(qmp: QmpClient, o: { vmId: string; disks: number; diskBps?: number; diskIops?: number }): Promise<string[]> {
  const ids = Array.from({ length: o.disks }, (_, i) => blockDeviceId(i));
  for (const id of ids) await qmp.execute("block_set_io_throttle", throttleArguments(id, throttleGroup(o.vmId), o));
  return ids;
}
