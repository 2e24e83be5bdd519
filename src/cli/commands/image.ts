// mvm image build|import|ls|rm: registered disk images, through the daemon, progress on stderr.

import { resolve } from "node:path";
import { connect, type MvmClient } from "../../client/client.js";
import { formatTable } from "../table.js";
import { printJson, removeEach, progress } from "../output.js";

export async function imageBuildCommand(distro: string, flags: { suite: string; packages?: string; name?: string; json?: boolean }): Promise<number> {
  const client = await connect();
  const image = await client.buildImage({ name: flags.name ?? distro, suite: flags.suite, packages: flags.packages ? flags.packages.split(",").filter(Boolean) : [] }, (l) => progress(`image: ${l}`));
  if (flags.json) printJson(image);
  else process.stdout.write(`${image.name}\n`);
  return 0;
}

export async function imageImportCommand(file: string, flags: { name?: string; json?: boolean }): Promise<number> {
  const client = await connect();
  const name = flags.name ?? file.replace(/^.*\//, "").replace(/\..*$/, "").toLowerCase().replace(/[^a-z0-9-]/g, "-").replace(/^-+/, "");
  const image = await client.importImage(resolve(file), name, (l) => progress(`image: ${l}`));
  if (flags.json) printJson(image);
  else process.stdout.write(`${image.name}\n`);
  return 0;
}

export async function imageLsCommand(flags: { json?: boolean }): Promise<number> {
  const images = await (await connect()).images();
  if (flags.json) printJson(images);
  else {
    const rows = [["NAME", "SIZE", "SOURCE"], ...images.map((i) => [i.name, `${Math.round(i.virtualBytes / 1048576)}M`, i.source])];
    process.stdout.write(formatTable(rows));
  }
  return 0;
}

export async function imageRmCommand(names: string[], flags: { json?: boolean }): Promise<number> {
  const client = await connect();
  return removeEach(names, (n) => client.removeImage(n), flags.json);
}

/** `--image debian` on a host without it builds it first, with progress; other unknown images are the daemon's error. */
export async function ensureDefaultImage(client: MvmClient, image: string | undefined): Promise<void> {
  if (image !== "debian") return;
  if ((await client.images()).some((i) => i.name === "debian")) return;
  progress("image debian is not built yet: building it (debootstrap, about a minute)");
  await client.buildImage({ name: "debian" }, (l) => progress(`image: ${l}`));
}
