/* The mvm agent protocol, version 1: constants shared by the guest agent.
 * docs/agent-protocol.md is the specification; src/agent/protocol.ts mirrors these values and a unit test
 * checks that both sides agree. */
#ifndef MVM_PROTO_H
#define MVM_PROTO_H

#define MVM_PROTO_VERSION 1
#define MVM_MAGIC0 'm'
#define MVM_MAGIC1 'v'
#define MVM_HEADER_SIZE 16
#define MVM_MAX_PAYLOAD (256 * 1024) /* frames above this are refused, on both sides */
#define MVM_DATA_CHUNK (64 * 1024)   /* stdout/stderr are read and sent in chunks of at most this */
#define MVM_WINDOW (1024 * 1024)     /* initial flow-control credit per session and direction */
#define MVM_MAX_SESSIONS 128
#define MVM_MAX_ENTROPY 512          /* IDENTITY: the most ENTROPY bytes (the kernel's CRNG needs 32) */

/* Frame types: host -> guest. */
#define T_HELLO_REQ 0x01
#define T_EXEC 0x02
#define T_STDIN 0x03
#define T_SIGNAL 0x04
#define T_WINDOW 0x05
#define T_POWEROFF 0x06
#define T_FS 0x07     /* a file system operation: stat, list, mkdir, rename, remove, chmod, chown, symlink */
#define T_READ 0x08   /* stream a file to the host */
#define T_WRITE 0x09  /* stream a file from the host */
#define T_RESIZE 0x0a /* a pty session's window size */
#define T_LIST 0x0b   /* which sessions are running? (a host that restarted asks) */
#define T_EXIT_ACK 0x0c /* the host has a session's EXIT: the agent may forget the session */
#define T_IDENTITY 0x0d /* clock, hostname, entropy, env, address of a restored VM; answered by HELLO */
#define T_FORWARD 0x0e  /* open a TCP connection to a guest port; bytes both ways as STDIN/STDOUT */
#define T_WATCH 0x0f    /* watch a guest directory (inotify); events come as WATCH_EVENTS */
/* Frame types: guest -> host. */
#define T_HELLO 0x81
#define T_STARTED 0x82
#define T_STDOUT 0x83
#define T_STDERR 0x84
#define T_EXIT 0x85
#define T_STDIN_WINDOW 0x86
#define T_ERROR 0x87
#define T_POWEROFF_ACK 0x88
#define T_FS_ENTRIES 0x89 /* file entries: a stat, a listing, the file being read */
#define T_FS_DONE 0x8a    /* a file operation ended: ERRNO+MESSAGE when it failed, CRC32+SIZE after a transfer */
#define T_SESSIONS 0x8b   /* the running sessions: SESSION* */
#define T_WATCH_EVENTS 0x8c /* EVENT*: what changed below a watched directory */

/* Field tags of TLV payloads. */
#define F_ARG 1
#define F_ENV 2
#define F_CWD 3
#define F_USER 4
#define F_STDIN 5
#define F_SIGNO 6
#define F_BYTES 7
#define F_PID 8
#define F_EXIT_CODE 9
#define F_TERM_SIGNAL 10
#define F_ERROR_CODE 11
#define F_MESSAGE 12
#define F_PROTO 13
#define F_AGENT_VERSION 14
#define F_CAP 15
#define F_MAX_PAYLOAD 16
#define F_WINDOW 17
#define F_UPTIME_MS 18
#define F_INIT_UPTIME_MS 19
#define F_MAX_SESSIONS 20
#define F_KERNEL 21
#define F_HOSTNAME 22
#define F_AGENT_PID 23
#define F_TIMEOUT_MS 24
#define F_TIMED_OUT 25
#define F_TTY 26
#define F_ROWS 27
#define F_COLS 28
#define F_OP 29
#define F_PATH 30
#define F_PATH2 31
#define F_DEPTH 32
#define F_MODE 33
#define F_OWNER 34
#define F_FLAGS 35
#define F_ENTRY 36
#define F_ERRNO 37
#define F_CRC32 38
#define F_SIZE 39
#define F_SESSION 40
#define F_REALTIME_NS 41    /* IDENTITY: u64, the host's CLOCK_REALTIME in ns when sent; echoed by its HELLO */
#define F_ENTROPY 42        /* IDENTITY: at most 512 random bytes for the kernel's pool */
#define F_NET_MAC 43        /* IDENTITY: eth0's new MAC, "52:54:00:aa:bb:cc" */
#define F_NET_ADDRESS 44    /* IDENTITY: eth0's new address, "10.1.2.3/24" */
#define F_NET_GATEWAY 45    /* IDENTITY: the new default route's gateway */
#define F_IDENTITY_ERROR 46 /* HELLO after IDENTITY: one step that failed, "clock: EPERM (...)"; repeated */
#define F_PORT 47           /* FORWARD: u32 TCP port 1-65535 */
#define F_ADDRESS 48        /* FORWARD: IPv4 or IPv6 literal to connect to (default 127.0.0.1) */
#define F_EVENT 49          /* WATCH_EVENTS: kind u8 (WK_*), then the name relative to PATH; repeated */

/* F_FLAGS bits. */
#define FL_PARENTS 1   /* mkdir -p; WRITE: make missing parent directories */
#define FL_RECURSIVE 2 /* remove a directory and everything below it */
#define FL_EXCLUSIVE 4 /* WRITE: fail if the path exists */

/* F_EVENT kinds. */
#define WK_CREATE 1
#define WK_WRITE 2
#define WK_REMOVE 3
#define WK_RENAME 4
#define WK_CHMOD 5
#define WK_OVERFLOW 6 /* the kernel's queue overflowed: events were lost (name empty) */
#define WK_LIMIT 7    /* a directory was not watched: the cap on watched directories (name: the directory) */

/* Error codes carried by T_ERROR. */
#define E_BAD_FRAME 1
#define E_FRAME_TOO_LARGE 2
#define E_UNKNOWN_TYPE 3
#define E_BAD_MESSAGE 4
#define E_UNKNOWN_SESSION 5
#define E_SESSION_EXISTS 6
#define E_TOO_MANY_SESSIONS 7
#define E_UNSUPPORTED_VERSION 8
#define E_SPAWN_FAILED 9
#define E_INTERNAL 10

#endif
