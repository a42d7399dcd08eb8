# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gameserver_global_optspecs
    string join \n host= game-port= test-port= math-port= positions-port= probe-interval-ms= probe-timeout-ms= max-connections= max-connections-per-ip= limit-loopback max-frame-bytes= handshake-timeout-ms= idle-timeout-ms= message-timeout-ms= write-timeout-ms= broadcast-interval-ms= max-moves-per-second= overview-interval-ms= overview-max-players= worker-threads= lane-connections= cluster= node-id= world= metrics= metrics-max-connections= web= web-max-connections= http-header-timeout-ms= http-idle-timeout-ms= legacy-welcome= positions-records= record= record-max-bytes= record-snapshot-secs= h/help V/version
end

function __fish_gameserver_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gameserver_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gameserver_using_subcommand
    set -l cmd (__fish_gameserver_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gameserver -n "__fish_gameserver_needs_command" -l host -d 'Address every service listens on' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l game-port -d 'Port of the native game protocol (the Bevy client)' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l test-port -d 'Port of the legacy "test packets" service' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l math-port -d 'Port of the legacy "math" service' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l positions-port -d 'Port of the legacy "positions" service' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l probe-interval-ms -d 'Interval between two "test packets" probes, in milliseconds' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l probe-timeout-ms -d 'How long a probe may stay unanswered before the client is dropped, in milliseconds' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l max-connections -d 'Most connected clients at once, all services counted; more are refused' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l max-connections-per-ip -d 'Most connected clients from one IP address (0 = no limit). Loopback addresses are exempt unless --limit-loopback is given, so local tools, benchmarks and a reverse proxy on the same box are not refused' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l max-frame-bytes -d 'Largest native frame a client may send, in bytes' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l handshake-timeout-ms -d 'Time a native client has to send its Hello, in milliseconds' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l idle-timeout-ms -d 'A native client silent for this long (it must answer pings) is dropped, in milliseconds. The server pings at a third of it' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l message-timeout-ms -d 'A native message started but not completed within this time drops the client (bytes trickling into a message never count as activity), in milliseconds' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l write-timeout-ms -d 'A client whose socket stays unwritable this long is dropped as a slow consumer, in milliseconds' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l broadcast-interval-ms -d 'Optional minimum time between two broadcasts of the world, in milliseconds, for fixed ticks. 0 (the default): no floor; a change goes out at once when the server is idle, and changes arriving while the last broadcast is still being taken by its subscribers go out together in the next one (batches grow with the load)' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l max-moves-per-second -d 'Most moves a second of one player that reach the world, for every service that moves a player (positions, classic, native). Moves above it are coalesced, latest wins: the player\'s newest position always goes out, some intermediate ones do not, and the player stays connected. 0: no cap' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l overview-interval-ms -d 'Time between two overviews of the whole world sent to native clients (protocol 3) that have an area of interest, in milliseconds. 0: no overview' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l overview-max-players -d 'Most players the overview lists one by one; in a bigger world it is a coarse density grid (players per cell) instead' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l worker-threads -d 'Threads that run the connections (0: one per CPU), besides the lane (`--lane-connections`). On a small box shared with other work, 1 serves a thousand clients or more slower; measured in docs/bench/README.md' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l lane-connections -d 'While the world has fewer subscribers than this, positions players are served together on one thread of their own, the lane: a small world\'s broadcast then wakes no other thread, which keeps the latency low at a few dozen clients. The player that makes the world this big moves them all to the worker threads. 0: no lane' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l cluster -d 'Join a cluster of nodes sharing one world over this NATS server, e.g. nats://127.0.0.1:4222. Off unless given: one node alone' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l node-id -d 'This node\'s number in the cluster, unique among the nodes (0-127): the high bits of every client id it hands out' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l world -d 'Name of the shared world: the NATS subject prefix, so one NATS can carry several worlds. Letters, digits, \'-\' and \'_\'' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l metrics -d 'Serve Prometheus metrics on http://ADDR/metrics (and /healthz), e.g. 127.0.0.1:9100. Off unless given' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l metrics-max-connections -d 'Most connections to the metrics port at once; at the cap a new one closes the one that has waited longest without completing a request. Its own budget: admin traffic never takes a player\'s slot' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l web -d 'Serve the live web view (a map of every player, in any browser) on http://ADDR/, e.g. 0.0.0.0:8080. Read-only, and a listener of its own: it may be public while --metrics stays private. Off unless given' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l web-max-connections -d 'Most connections to the web view at once (page loads and live viewers); at the cap a new one closes the one that has waited longest without completing a request (a live viewer only if none waits)' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l http-header-timeout-ms -d 'Time an HTTP client (metrics, web) has to send a whole request head, and the longest a keep-alive connection waits for its next request, in milliseconds' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l http-idle-timeout-ms -d 'An HTTP connection that moves no byte either way for this long is closed; a web viewer that does not answer the server\'s pings for this long is dropped (they are sent every third of it), in milliseconds' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l legacy-welcome -d 'Whether the legacy services (test packets, math, positions) start by sending the client its id as a 4-byte `<i`. `off` is for scripts from the original demos that expect no greeting; clients still get ids in the registry, the logs and the metrics' -r -f -a "on\t'Send the id greeting `<i` first (the legacy contract)'
off\t'Send no greeting (the classic demos)'"
complete -c gameserver -n "__fish_gameserver_needs_command" -l positions-records -d 'What the positions service sends legacy clients: `ihh` = 8-byte `<ihh` records with the player id, and leave markers; `hh` = the classic 4-byte `<hh` packets with no id and no leave markers. Native clients are not affected' -r -f -a "ihh\t'`<ihh` records (id, x, y) and leave markers (the legacy contract)'
hh\t'`<hh` packets (x, y), no id, no leave markers (the classic demos)'"
complete -c gameserver -n "__fish_gameserver_needs_command" -l record -d 'Record the world\'s broadcasts (joins, moves, leaves, every node\'s players on a cluster node) to this file, to replay later with `netgame replay PATH` or `gameserver replay PATH --web HOST:PORT`. Never overwrites: an existing PATH (or PATH.1) is an error at start. Flushed and synced every 500 ms, so a crash loses at most that' -r -F
complete -c gameserver -n "__fish_gameserver_needs_command" -l record-max-bytes -d 'Largest size of one recording file, in bytes: past it the recording goes on in PATH.1, then PATH.2, … (each starts with a snapshot, so any of them plays alone; none is deleted)' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l record-snapshot-secs -d 'Seconds between two snapshots of the whole world in the recording: a replay seeks from the last snapshot before the moment it wants' -r
complete -c gameserver -n "__fish_gameserver_needs_command" -l limit-loopback -d 'Apply --max-connections-per-ip to loopback addresses too'
complete -c gameserver -n "__fish_gameserver_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gameserver -n "__fish_gameserver_needs_command" -s V -l version -d 'Print version'
complete -c gameserver -n "__fish_gameserver_needs_command" -f -a "replay" -d 'Play a recording made with --record: print the world at one moment (--at SECONDS --print), or serve it to browsers with a timeline (--web HOST:PORT). Opens no game port. The rotated files PATH.1, PATH.2, … play after PATH as one recording'
complete -c gameserver -n "__fish_gameserver_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gameserver -n "__fish_gameserver_using_subcommand replay" -l at -d 'A moment of the recording, in seconds from its start' -r
complete -c gameserver -n "__fish_gameserver_using_subcommand replay" -l web -d 'Serve the recording\'s web view on http://HOST:PORT/: the live view\'s page with a timeline (play, pause, speed, seek), read-only' -r
complete -c gameserver -n "__fish_gameserver_using_subcommand replay" -l print -d 'Print the world at --at, one line per player (`id name x y`), and exit'
complete -c gameserver -n "__fish_gameserver_using_subcommand replay" -s h -l help -d 'Print help'
complete -c gameserver -n "__fish_gameserver_using_subcommand help; and not __fish_seen_subcommand_from replay help" -f -a "replay" -d 'Play a recording made with --record: print the world at one moment (--at SECONDS --print), or serve it to browsers with a timeline (--web HOST:PORT). Opens no game port. The rotated files PATH.1, PATH.2, … play after PATH as one recording'
complete -c gameserver -n "__fish_gameserver_using_subcommand help; and not __fish_seen_subcommand_from replay help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
