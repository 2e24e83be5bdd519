// The name rules of everything mvm names (VMs, images, networks, snapshots, volumes): lower-case letters,
// digits and '-', at most 63, not starting with '-'. Never a '/', so a name cannot be taken for a path.

export const NAME_PATTERN = "^[a-z0-9][a-z0-9-]{0,62}$";
