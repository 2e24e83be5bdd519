/* Shared declarations of the guest agent: the port (channel to the host) and exec sessions. */
#ifndef MVM_AGENT_H
#define MVM_AGENT_H
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>

#define AGENT_VERSION "0.1.0"

/* port.c: the virtio-serial port named org.mvm.agent. */
int port_open(const char *path_override);
int port_fd(void);
int port_connected(void);
void port_set_connected(int c);
/* Sends one frame; blocks (waiting for the host to reconnect if need be) until it is written whole. */
void port_send(uint8_t type, uint32_t session, const void *payload, uint32_t len);
struct tlv_out;
/* Sends a payload built with tlv_*(); one that overflowed its buffer is not sent: an ERROR goes instead. */
void port_send_tlv(uint8_t type, uint32_t session, const struct tlv_out *t);
void send_error(uint32_t session, uint32_t code, const char *fmt, ...);
int64_t uptime_ms(void);
void logmsg(const char *fmt, ...);

/* agent.c: HELLO. As the answer to IDENTITY (answering: its REALTIME_NS, else NULL) it echoes that value,
 * by which the host tells it from any other HELLO, and names the steps that failed. */
void send_hello(const uint64_t *answering, const char *const *errors, int nerrors);
/* identity.c: applies an IDENTITY frame and answers with HELLO, or with ERROR if it is malformed. */
void identity_apply(uint32_t session, const uint8_t *payload, uint32_t len);

/* session.c: one running command per session. */
struct session;
void sessions_init(void);
void session_exec(uint32_t id, const uint8_t *payload, uint32_t len);
void session_stdin(uint32_t id, const uint8_t *data, uint32_t len);
void session_signal(uint32_t id, const uint8_t *payload, uint32_t len);
void session_window(uint32_t id, const uint8_t *payload, uint32_t len);
void sessions_reap(void);
/* Adds the session pipes to a poll set; returns how many entries were added. */
int sessions_poll_fds(struct pollfd *fds, int max, int output_allowed);
void sessions_poll_done(struct pollfd *fds, int n);
/* Milliseconds until the next session deadline, or -1. */
int sessions_next_timeout(void);
void sessions_tick(void);
void session_resize(uint32_t id, const uint8_t *payload, uint32_t len);
/* EXIT_ACK: the host has the session's EXIT; the agent forgets the session. */
void session_exit_ack(uint32_t id);
/* Answers LIST: every session with its pid and command, then again the EXIT of each ended one that
 * no host has acknowledged yet. */
void sessions_list(void);
/* A new host connected: it knows nothing of the old one's credit, so every session starts afresh. */
void sessions_new_host(void);

/* files.c: file operations and transfers. */
int files_owns(uint32_t id);
void files_fs(uint32_t id, const uint8_t *payload, uint32_t len);
void files_read(uint32_t id, const uint8_t *payload, uint32_t len);
void files_write(uint32_t id, const uint8_t *payload, uint32_t len);
void files_data(uint32_t id, const uint8_t *data, uint32_t len);
void files_window(uint32_t id, uint32_t bytes);
int files_pump(void);
void files_cancel(uint32_t id);
void files_abort_all(void);

/* forward.c: TCP connections to guest ports (FORWARD), bytes as STDIN/STDOUT under the windows. */
int forward_owns(uint32_t id);
void forward_open(uint32_t id, const uint8_t *payload, uint32_t len);
void forward_data(uint32_t id, const uint8_t *data, uint32_t len);
void forward_window(uint32_t id, uint32_t bytes);
void forward_cancel(uint32_t id);
void forward_abort_all(void);
int forward_poll_fds(struct pollfd *fds, int max, int output_allowed);
void forward_poll_done(struct pollfd *fds, int n);
/* Fails connects past their deadline; milliseconds until the next one, or -1. */
int forward_tick(void);

/* watch.c: inotify on guest directories (WATCH), events as WATCH_EVENTS under the output window. */
int watch_owns(uint32_t id);
void watch_start(uint32_t id, const uint8_t *payload, uint32_t len);
void watch_window(uint32_t id, uint32_t bytes);
void watch_cancel(uint32_t id);
void watch_abort_all(void);
int watch_poll_fds(struct pollfd *fds, int max, int output_allowed);
void watch_poll_done(struct pollfd *fds, int n);

#endif
