//! Black-box tests of the `eddy` binary: one integration test binary, one module per area.
//!
//! Every test starts the real binary on an ephemeral loopback port against its own temp store of
//! three disk roots, and talks raw bytes over a socket.

/// Temp store, content generator, CLI runner, served instance, raw HTTP/1.1 client, multipart parser.
mod support;

/// Range requests: every form, multipart/byteranges, clipping, huge numerals, 416, limits.
mod range;

/// Conditional requests: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range.
mod conditional;

/// Connections: keep-alive, pipelining, HTTP/1.0, methods, malformed/oversized requests, bodies,
/// timeouts, max_connections, pipelining depth, graceful shutdown.
mod http1;

/// SIGTERM under load: every response in flight finishes byte for byte, then exit 0.
mod drain;

/// Hostile clients: connect floods over the connection cap, the descriptor budget at start-up.
mod hostile;

/// Path safety: traversal and encoding tricks never reach a byte outside the store.
mod paths;

/// Drive faults: loop-mounted drives that fail (EIO) or vanish under load, drain and enable.
mod drives;

/// Cold objects: bodies sent off the event loop while the page cache has none of their pages.
mod cold;

/// A sparse file over 4 GiB: ranges around 2^31 and 2^32, long responses, sparse import.
mod bigfile;

/// The command line: version, check-config errors, store import/ls, serve options.
mod cli;

/// Real clients: curl ranges and resume, ffmpeg/ffprobe seeking over HTTP.
mod clients;

/// Signed URLs: `eddy token sign` against `eddy serve` with tokens required.
mod token;

/// The admin listener: /metrics, /healthz, the status page, and its config.
mod admin;

/// Live reload: SIGHUP re-reads the config; live keys apply, bad files change nothing.
mod reload;

/// The status page in headless chromium: disks, fill state, top objects, the throughput chart.
mod status;

/// Reports to the control plane: health, popularity, inventory; an unreachable control plane.
mod report;

/// The fill: signed manifests, downloads from nginx and eddy-origin, installs and evictions while serving.
mod fill;
/// The TLS listener: HTTP/2 and HTTP/1.1 parity with the plain listener, signed URLs, certificate
/// reload, bad certificates, kTLS report, handshake/idle deadlines, HTTP/2 limits and rapid reset.
mod tls;

/// The control plane `eddy-origin`: keys, signed manifests, catalogue reloads, content ranges,
/// `--source` order, the test-only faults, error bodies and exit codes.
mod origin;

/// Players: CORS, path-form signed URLs, Cache-Control; hls.js in headless chromium and ffmpeg
/// playing an HLS title over HTTPS with path tokens.
mod players;

/// Layout rules as tests: the planner (`src/serve/plan/`) names no runtime, file system or clock.
mod tidy;
