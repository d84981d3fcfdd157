//! Every default and every limit of eddy, each with the reason for its value.
//!
//! Owns: constants only. Nothing else in the crate may hard-code a limit; the
//! config layer reads its defaults from here, and `docs/config.md` lists them.

use std::time::Duration;

/// Where `eddy serve` listens when neither config nor `--listen` says: loopback,
/// so that a box is never exposed by accident; production configs name the
/// serving address explicitly.
pub const LISTEN: &str = "127.0.0.1:8080";

/// Request line plus headers. Players send well under 2 KiB; nginx's default
/// ceiling is 4 x 8 KiB. 16 KiB leaves room for long signed URLs and cookies
/// while bounding the memory a connection can pin. Over it: 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The request-target alone. Signed URLs with a path prefix and a token stay far
/// below 2 KiB; 8 KiB matches nginx's single large header buffer. Over it: 414.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// Header field lines per request. Browsers send about 20; 100 is what hyper
/// and httparse users commonly allow. Over it: 431.
pub const MAX_HEADERS: usize = 100;

/// Ranges in one Range field. Players ask for one; multi-range users (PDF
/// readers, some probes) ask for a handful. 16 keeps multipart answers small
/// and stops the `0-,0-,0-...` amplification class (CVE-2011-3192). Over it:
/// the field is ignored and the whole object is sent, as nginx does.
pub const MAX_RANGES: usize = 16;

/// The satisfiable ranges of one request may add up to at most this percentage
/// of the object. 100 means a Range field can never make us send more bytes
/// than a plain GET would (nginx's rule). Over it: the field is ignored.
pub const MAX_RANGE_SUM_PERCENT: u32 = 100;

/// Concurrent client connections. A storage OCA held up to 40,000 long-lived
/// connections (field notes); 10,000 fits a small box's memory and fd budget
/// (and the systemd unit's LimitNOFILE). Over it: 503 and close, so that the
/// player tries another appliance at once.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Connections over `MAX_CONNECTIONS` being refused at once with a 503 (each
/// holds its descriptor for up to `REFUSAL_SEND_TIMEOUT` plus
/// `REFUSAL_LINGER`, about 2 s). Beyond it a connection is closed at once, so
/// that a connect flood that never reads cannot spend the descriptors the
/// server needs to accept (and refuse) anyone: 512 answers a burst of that
/// many reconnecting players a second with a 503 and costs 2% of the
/// unit's LimitNOFILE.
pub const MAX_REFUSALS: usize = 512;

/// How long a 503 refusal may wait to be written (a fresh socket takes its
/// few hundred bytes at once; this only bounds a peer with no window).
pub const REFUSAL_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a refused connection lingers after its 503, so that the player
/// reads the answer rather than a reset.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Descriptors eddy holds besides client connections, cached objects and
/// refusals: standard streams, the runtime's epoll and wake-up descriptors,
/// listeners, disk directories, certificate reloads and logs. 64 is several
/// times what they add up to with a handful of disks; the descriptor budget
/// adds `DISK_READS_PER_DRIVE` per drive (each cold window sent off the event loop uses
/// a duplicate of its socket) and `ADMIN_MAX_CONNECTIONS` to it.
pub const FD_RESERVE: usize = 64;

/// From a connection's first byte (or its accept) to the end of a request head.
/// Go servers use 10 s (ReadHeaderTimeout); it stops slowloris without hurting
/// a real client on a bad link.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a keep-alive connection may wait for its next request. Players
/// fetch a segment every few seconds; nginx uses 75 s, Go suggests 120 s. 60 s
/// keeps idle sockets bounded while covering a paused player's next fetch.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// No write progress for this long and the client is gone: close. nginx's
/// send_timeout is 60 s. It bounds a stalled reader, not a slow transfer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the plain connections' deadlines (`serve::h1::deadline`) are
/// swept, and so how late one may be kept: up to two ticks past
/// `header_read_timeout`, `idle_timeout`, `send_timeout` or
/// `linger_timeout`, never early. 100 ms is nothing against those
/// (seconds); a sweep of 10,000 connections takes about 20 µs.
pub const DEADLINE_TICK: Duration = Duration::from_millis(100);

/// Requests a client may have queued ahead of our answers (pipelining). Real
/// pipeliners send a few; 16 bounds the work one read can commit us to.
pub const MAX_PIPELINE_DEPTH: usize = 16;

/// Bytes read and thrown away in a lingering close (an unwanted request body,
/// or requests pipelined past the connection's last answer), so the client
/// reads our answer instead of a reset. nginx's lingering_close reads without a
/// byte cap; 1 MiB bounds the work.
pub const MAX_DISCARD_BODY_BYTES: u64 = 1024 * 1024;

/// How long the lingering close may go on (nginx: lingering_timeout 5 s).
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// Graceful shutdown: in-flight responses get this long to finish after SIGTERM.
/// A 2 MiB segment at 5 Mbit/s takes about 3.4 s; 30 s covers slow clients and
/// stays below systemd's default TimeoutStopSec of 90 s.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Objects kept open between requests (one file descriptor each). A title has
/// tens of files (bitrates, audio, subtitles, and segments when a rendition is
/// stored as many small files); 16384 holds the hot set of a box of segmented
/// titles and, with `MAX_CONNECTIONS`, stays within the unit's LimitNOFILE
/// (65536). Saves an openat2, fstat and fgetxattr per request: bench (h)
/// (10,000 x 256 KiB objects) went from 0.89 to 1.05 of nginx's req/s when
/// the cache grew from 4096 to 16384.
pub const OPEN_FILE_CACHE: usize = 16384;

/// How long an opened object is served before its path is checked again (one
/// `fstatat`; a changed or replaced file is opened anew). Installs by
/// this process take effect at once; this bounds how long a version installed
/// by another process (`eddy store import` while serving) takes to show.
pub const OPEN_FILE_VALID: Duration = Duration::from_secs(5);

/// Signed URLs are required on the plain listener unless configured: off, so
/// that a lab box serves out of the box; production configs turn it on.
pub const PLAIN_REQUIRE_TOKENS: bool = false;

/// Signed URLs are required on the TLS listener unless configured: on, because
/// a TLS listener is what the control plane steers real players to.
pub const TLS_REQUIRE_TOKENS: bool = true;

/// Query parameter carrying a signed URL's unix expiry (Open Connect style).
pub const TOKEN_EXPIRY_PARAM: &str = eddy_proto::token::DEFAULT_EXPIRY_PARAM;

/// Query parameter carrying the token itself.
pub const TOKEN_PARAM: &str = eddy_proto::token::DEFAULT_TOKEN_PARAM;

/// How often the TLS certificate and key files are checked for a change (a
/// `stat` of each). SIGHUP reloads at once; polling covers a renewal tool
/// (certbot, an ISP's own) that only replaces the files.
pub const TLS_RELOAD_CHECK: Duration = Duration::from_secs(5);

/// Size of the body chunks handed to the TLS transport: each is a slice of
/// the memory-mapped file, which rustls cuts into 16 KiB records. Larger
/// chunks mean fewer wake-ups per response; 1 MiB measured best for TLS in the
/// prototype (perf-baseline §4a) and in `eddy-bench` (see docs/config.md).
pub const TLS_FRAME_BYTES: usize = 1024 * 1024;

/// The background integrity check (`store::fsck`) reads each drive at up to
/// this many MiB/s: a few percent of a hard drive's sequential rate, so that
/// serving keeps the drive; a 4 TB drive is re-read about every three days.
/// Pages it reads that were not cached are dropped again after.
pub const FSCK_MIB_PER_SEC: usize = 16;

/// The background check's first pass starts this long after start-up (not
/// in the middle of a restart's busiest minutes), then one starts this long
/// after the previous ended; `POST /store/fsck` starts one at once.
pub const FSCK_FIRST_PASS_AFTER: Duration = Duration::from_secs(600);
pub const FSCK_PASS_EVERY: Duration = Duration::from_secs(6 * 3600);

/// How often each drive in service is probed (its root stat'ed, its
/// `objects/` listed, its device id compared) while serving: a drive that
/// vanished is out of service within this long even if nobody reads from it.
/// Each probe is a few system calls per drive.
pub const DRIVE_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The shortest body whose head is held back for it with `MSG_MORE`, so that
/// head and body leave as one stream of full segments: twice the largest
/// segment (64 KiB over loopback with GSO). A shorter body merged with its
/// head ends a few hundred bytes past a segment, and under a pacing congestion
/// control (BBR, this machine's default) that tail waits for a pacing timer on
/// every response: on 64 KiB ranges that cost 1.6x nginx's kernel CPU per
/// request and 30% of the requests per second. A long body is paced anyway,
/// and pushing its head alone costs the client an extra wake-up and segment:
/// 2 MiB ranges served 0.99x nginx's requests per second with the head pushed
/// at once and 1.32x with it held (docs/decisions/0003-serving-runtime-and-writes.md).
pub const MSG_MORE_MIN_BODY: u64 = 128 * 1024;

/// How many bytes of a response hyper's HTTP/2 layer buffers per stream
/// ahead of what the connection can send (hyper's default is 400 KiB). Body
/// bytes are copied out of the page cache when they are read (`pread`), so
/// what is buffered ahead is read again from memory when rustls seals it:
/// see docs/decisions/0002-tls-body-reads.md for the measurement.
pub const H2_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// Use kernel TLS where the kernel offers it (`auto`) or never (`off`).
pub const KTLS: &str = "auto";

/// HTTP/2 streams one connection may have open at once. RFC 9113 suggests no
/// fewer than 100; nginx uses 128. A player needs a handful (video, audio,
/// subtitles); 100 bounds what one connection can make us hold.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Decoded size of one HTTP/2 header list that the protocol layer accepts
/// (HPACK bomb bound, advertised in SETTINGS). Twice `MAX_HEAD_BYTES`, so that
/// a head between the two is refused by eddy's own check of
/// `limits.max_head_bytes`, with the same 431 as on the plain listener, and
/// only larger ones by the HTTP/2 layer's bare 431.
pub const H2_MAX_HEADER_LIST_BYTES: u32 = 2 * MAX_HEAD_BYTES as u32;

/// Streams a client may reset before we even started on them (hyper's
/// defence against CVE-2023-44487 "rapid reset"); over it, GOAWAY. 20 is
/// hyper's default, and no honest player resets streams that fast.
pub const H2_MAX_PENDING_RESETS: usize = 20;

/// Our own rapid-reset bound, on top of hyper's: once a connection has had
/// this many streams reset by the client with more resets than completed
/// responses, it gets GOAWAY. A player seeking resets a stream now and then;
/// a flood resets nearly all of them.
pub const H2_MAX_CLIENT_RESETS: u32 = 100;

/// Bodies are sent in windows of this many bytes; before each window goes out,
/// eddy checks (mincore) that its pages are in memory and, if not, reads them
/// on the blocking pool first, so that a disk read never stalls the event loop
/// and every other connection on it. 2 MiB is nginx's sendfile_max_chunk, one
/// mincore call of 512 pages, and a few milliseconds of NVMe reading.
pub const DISK_WINDOW: u64 = 2 * 1024 * 1024;

/// Cold windows being read from one drive at once (blocking threads in use,
/// each in a sendfile or a read). Each drive has its own permits, so a drive
/// that hangs instead of failing holds only its own share and every other
/// drive keeps reading. A drive wants a few reads in flight to reach full
/// speed (an NVMe one tens); more only queues inside the kernel and costs
/// threads. nginx's `aio threads` pool has 32 threads for all drives.
pub const DISK_READS_PER_DRIVE: usize = 16;

/// A cold read that takes longer than this fails its drive: a drive that
/// hangs is taken out of service like one that fails, and the request gets
/// an error instead of waiting forever. A healthy drive under a full queue
/// answers a 2 MiB read in well under a second; 10 s leaves room for a drive
/// recovering a sector by itself.
pub const DISK_READ_DEADLINE: Duration = Duration::from_secs(10);

/// On kernels without `cachestat` (before 6.5): once a window of an object is
/// found cold, its windows are checked page by page (`mincore` of every page)
/// for this long instead of by their first page. A file that is warming up is
/// partly in memory, so a one-page check passes while later pages of the same
/// window still need the disk, and that sendfile stalls every connection of
/// its thread for milliseconds. The full check costs about 50 µs per 2 MiB
/// window, too much to pay on every warm window forever. Two seconds outlasts
/// the warm-up of the windows being read.
pub const COLD_MEMORY: std::time::Duration = std::time::Duration::from_secs(2);

/// How often eddy checks whether a flood of connections has receded and the
/// memory they freed should go back to the kernel (`serve::trim`). A check
/// reads two counters; a trim after a flood takes up to a few milliseconds of
/// a blocking thread, so at most one per 5 s.
pub const TRIM_CHECK: Duration = Duration::from_secs(5);

/// Connections that must have closed since the last trim before the next one
/// (and at most half as many open as at the peak): 1000 closed connections
/// left about 60 MB of freed memory behind in the flood replay of
/// docs/decisions/0001-allocator.md, while a few hundred leave little.
pub const TRIM_AFTER_CLOSED: u64 = 1000;

/// Where the admin listener (`/metrics`, `/healthz`, the status page) listens
/// when neither config nor `--admin-listen` says: loopback, so that an operator
/// gets metrics out of the box and nothing is exposed by accident. 9180 sits
/// among the ports Prometheus exporters use and clear of `LISTEN`'s 8080.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9180";

/// Concurrent admin connections. A Prometheus server or two and an operator's
/// browser need a handful; 64 bounds what a misbehaving scraper can hold. Over
/// it: the connection is closed at once (serving is never slowed for admin).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// From the admin connection's accept, or the end of its previous response, to
/// the end of a request head. hyper starts this clock while it waits for a
/// head, so it also bounds keep-alive idling. Scrapers send their head at once;
/// 10 s matches `HEADER_READ_TIMEOUT` and stops slowloris on the admin port.
pub const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest an admin connection may stay open, whatever it does. Answers
/// are small (a few KiB), so this only cuts stalled readers and clients that
/// keep a connection alive by asking again and again.
pub const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Bytes hyper may buffer for one admin request head. The admin routes take no
/// query and no body; 16 KiB (hyper's floor is 8 KiB) is ample for a browser's
/// headers and bounds memory per connection.
pub const ADMIN_MAX_HEAD_BYTES: usize = 16 * 1024;

/// Pause after a failed admin accept (EMFILE and friends) so that the loop
/// backs off instead of spinning; the serve path waits the same 50 ms.
pub const ADMIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How often the status page's throughput chart samples the request and
/// byte counters: fine enough for a person to see a peak, and one task
/// waking every 2 s costs nothing.
pub const STATUS_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Samples the chart keeps: 150 at 2 s is the last 5 minutes (a few KiB).
pub const STATUS_SAMPLES: usize = 150;

/// Objects listed under "top objects" on the status page: enough to see what
/// a title's players are fetching, short enough to read at a glance.
pub const STATUS_TOP_OBJECTS: usize = 10;

/// Log level when none is configured.
pub const LOG_LEVEL: &str = "info";

/// Exit code for bad usage or configuration (EX_USAGE from sysexits.h).
pub const EXIT_USAGE: u8 = 64;

/// The most one sendfile(2) call moves on Linux (0x7ffff000 bytes); we loop.
pub const SENDFILE_MAX_CHUNK: usize = 0x7fff_f000;

/// The fill window, appliance-local time: Open Connect fills storage
/// appliances from 02:00 to 14:00, the ISP's off-peak hours (field notes §2).
/// A manifest's `fill_start` moves the start so a whole site starts together.
pub const FILL_WINDOW: &str = "02:00-14:00";

/// How often the manifest is fetched. Cheap (one signed JSON), and a new
/// manifest inside the window starts another fill within this delay.
pub const FILL_POLL: Duration = Duration::from_secs(300);

/// Downloads at once: enough to fill a 1.2 Gbit/s cap from sources that are
/// each slower, few enough not to thrash a disk with interleaved writes.
pub const FILL_PARALLEL: usize = 4;

/// The fill rate cap in Mbit/s: Open Connect's 1.2 Gbit/s per storage
/// appliance (field notes §2), the inbound capacity an ISP plans for.
pub const FILL_MAX_RATE_MBPS: u64 = 1200;

/// MiB kept free on every disk: room for the filesystem's own needs and a
/// fill that is planned while serving logs are written.
pub const FILL_RESERVE_MIB: u64 = 1024;

/// Connecting to a source or the control plane.
pub const FILL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// No byte from a source for this long: the attempt fails and the next
/// source is tried (a stalled source never holds a download).
pub const FILL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The first retry backoff; doubled each round with jitter.
pub const FILL_RETRY_BASE: Duration = Duration::from_secs(1);

/// The longest retry backoff.
pub const FILL_RETRY_MAX: Duration = Duration::from_secs(60);

/// Rounds over all of an object's sources before it is left for the next run.
pub const FILL_RETRY_ROUNDS: usize = 4;

/// The largest manifest read: about 300,000 objects of 200 bytes each.
pub const FILL_MAX_MANIFEST_BYTES: usize = 64 << 20;

/// Trusted roots for an https control plane or source when `fill.ca_file`
/// is not set: Debian's system bundle.
pub const FILL_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The shortest admin token accepted: 128 bits of base64 or hex.
pub const ADMIN_TOKEN_MIN_BYTES: usize = 16;

/// How often health goes to the control plane: steering decides from it, so
/// a failing or draining appliance must show within seconds.
pub const REPORT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// How often popularity is snapshotted and sent (counts reset each time).
pub const REPORT_POPULARITY_INTERVAL: Duration = Duration::from_secs(60);

/// How often the full inventory is sent even when nothing changed (it is
/// also sent after every change).
pub const REPORT_INVENTORY_INTERVAL: Duration = Duration::from_secs(3600);

/// Reports kept while the control plane is unreachable; over it the oldest
/// is dropped (and counted): about 20 minutes of health at the default.
pub const REPORT_BUFFER: usize = 256;

/// The shortest report token accepted.
pub const REPORT_TOKEN_MIN_BYTES: usize = 16;

/// Log lines as text: readable on a terminal and in journald; `json` is one
/// key away for a log pipeline.
pub const LOG_FORMAT: &str = "text";

/// The access log is off: at the request rates of an appliance a line per
/// request is a disk's worth of writes; `full` or `1/N` turn it on.
pub const ACCESS_LOG: &str = "off";

/// Whether a listener applies the `[cors]` rules (`serve.cors`, `tls.cors`)
/// once `cors.allow_origins` names an origin: yes, so that one key turns CORS
/// on; a listener that only serves other appliances or apps can opt out.
pub const LISTENER_CORS: bool = true;

/// How long a browser may keep an accepted CORS preflight
/// (`Access-Control-Max-Age`). Chromium caps it at 2 h and Firefox at 24 h;
/// 2 h saves a player a preflight per segment for a whole film in both.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(2 * 3600);

/// Send `Timing-Allow-Origin` to allowed origins: players measure throughput
/// with Resource Timing, and an origin that may read the bytes learns nothing
/// new from their timing.
pub const CORS_TIMING_ALLOW_ORIGIN: bool = true;

/// Cache-Control of objects no rule names: eddy's objects are immutable and
/// versioned (a new version is a new key or at least a new ETag), so browsers
/// and caches may keep them for a year without asking again (RFC 8246).
pub const CACHE_CONTROL_DEFAULT: &str = "public, max-age=31536000, immutable";

/// Cache-Control of HLS and DASH playlists (`.m3u8`, `.mpd`): a live
/// playlist changes every segment, and Apple's guidance is half a target
/// duration (segments are 2 to 6 s); a VOD playlist loses little by it.
pub const CACHE_CONTROL_PLAYLISTS: &str = "public, max-age=2";
