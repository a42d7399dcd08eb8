complete -c gameserver -l host -d 'Address every service listens on' -r
complete -c gameserver -l game-port -d 'Port of the native game protocol (the Bevy client)' -r
complete -c gameserver -l test-port -d 'Port of the legacy "test packets" service' -r
complete -c gameserver -l math-port -d 'Port of the legacy "math" service' -r
complete -c gameserver -l positions-port -d 'Port of the legacy "positions" service' -r
complete -c gameserver -l probe-interval-ms -d 'Interval between two "test packets" probes, in milliseconds' -r
complete -c gameserver -l probe-timeout-ms -d 'How long a probe may stay unanswered before the client is dropped, in milliseconds' -r
complete -c gameserver -l max-connections -d 'Most connected clients at once, all services counted; more are refused' -r
complete -c gameserver -l max-connections-per-ip -d 'Most connected clients from one IP address (0 = no limit). Loopback addresses are exempt unless --limit-loopback is given, so local tools, benchmarks and a reverse proxy on the same box are not refused' -r
complete -c gameserver -l max-frame-bytes -d 'Largest native frame a client may send, in bytes' -r
complete -c gameserver -l handshake-timeout-ms -d 'Time a native client has to send its Hello, in milliseconds' -r
complete -c gameserver -l idle-timeout-ms -d 'A native client silent for this long (it must answer pings) is dropped, in milliseconds. The server pings at a third of it' -r
complete -c gameserver -l message-timeout-ms -d 'A native message started but not completed within this time drops the client (bytes trickling into a message never count as activity), in milliseconds' -r
complete -c gameserver -l write-timeout-ms -d 'A client whose socket stays unwritable this long is dropped as a slow consumer, in milliseconds' -r
complete -c gameserver -l broadcast-interval-ms -d 'Optional minimum time between two broadcasts of the world, in milliseconds, for fixed ticks. 0 (the default): no floor; a change goes out at once when the server is idle, and changes arriving while the last broadcast is still being taken by its subscribers go out together in the next one (batches grow with the load)' -r
complete -c gameserver -l max-moves-per-second -d 'Most moves a second of one player that reach the world, for every service that moves a player (positions, classic, native). Moves above it are coalesced, latest wins: the player\'s newest position always goes out, some intermediate ones do not, and the player stays connected. 0: no cap' -r
complete -c gameserver -l overview-interval-ms -d 'Time between two overviews of the whole world sent to native clients (protocol 3) that have an area of interest, in milliseconds. 0: no overview' -r
complete -c gameserver -l overview-max-players -d 'Most players the overview lists one by one; in a bigger world it is a coarse density grid (players per cell) instead' -r
complete -c gameserver -l worker-threads -d 'Threads that run the connections (0: one per CPU), besides the lane (`--lane-connections`). On a small box shared with other work, 1 serves a thousand clients or more slower; measured in docs/bench/README.md' -r
complete -c gameserver -l lane-connections -d 'While the world has fewer subscribers than this, positions players are served together on one thread of their own, the lane: a small world\'s broadcast then wakes no other thread, which keeps the latency low at a few dozen clients. The player that makes the world this big moves them all to the worker threads. 0: no lane' -r
complete -c gameserver -l cluster -d 'Join a cluster of nodes sharing one world over this NATS server, e.g. nats://127.0.0.1:4222. Off unless given: one node alone' -r
complete -c gameserver -l node-id -d 'This node\'s number in the cluster, unique among the nodes (0-127): the high bits of every client id it hands out' -r
complete -c gameserver -l world -d 'Name of the shared world: the NATS subject prefix, so one NATS can carry several worlds. Letters, digits, \'-\' and \'_\'' -r
complete -c gameserver -l metrics -d 'Serve Prometheus metrics on http://ADDR/metrics (and /healthz), e.g. 127.0.0.1:9100. Off unless given' -r
complete -c gameserver -l metrics-max-connections -d 'Most connections to the metrics port at once; at the cap a new one closes the one that has waited longest without completing a request. Its own budget: admin traffic never takes a player\'s slot' -r
complete -c gameserver -l web -d 'Serve the live web view (a map of every player, in any browser) on http://ADDR/, e.g. 0.0.0.0:8080. Read-only, and a listener of its own: it may be public while --metrics stays private. Off unless given' -r
complete -c gameserver -l web-max-connections -d 'Most connections to the web view at once (page loads and live viewers); at the cap a new one closes the one that has waited longest without completing a request (a live viewer only if none waits)' -r
complete -c gameserver -l http-header-timeout-ms -d 'Time an HTTP client (metrics, web) has to send a whole request head, and the longest a keep-alive connection waits for its next request, in milliseconds' -r
complete -c gameserver -l http-idle-timeout-ms -d 'An HTTP connection that moves no byte either way for this long is closed; a web viewer that does not answer the server\'s pings for this long is dropped (they are sent every third of it), in milliseconds' -r
complete -c gameserver -l legacy-welcome -d 'Whether the legacy services (test packets, math, positions) start by sending the client its id as a 4-byte `<i`. `off` is for scripts from the original demos that expect no greeting; clients still get ids in the registry, the logs and the metrics' -r -f -a "on\t'Send the id greeting `<i` first (the legacy contract)'
off\t'Send no greeting (the classic demos)'"
complete -c gameserver -l positions-records -d 'What the positions service sends legacy clients: `ihh` = 8-byte `<ihh` records with the player id, and leave markers; `hh` = the classic 4-byte `<hh` packets with no id and no leave markers. Native clients are not affected' -r -f -a "ihh\t'`<ihh` records (id, x, y) and leave markers (the legacy contract)'
hh\t'`<hh` packets (x, y), no id, no leave markers (the classic demos)'"
complete -c gameserver -l limit-loopback -d 'Apply --max-connections-per-ip to loopback addresses too'
complete -c gameserver -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gameserver -s V -l version -d 'Print version'
