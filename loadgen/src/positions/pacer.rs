//! Send ticks from one OS thread with precise sleeps.
//!
//! Tokio's timer wheel has a resolution of one millisecond and rounds every
//! deadline up to the next tick: measured here, a client task woken by a
//! `tokio::time::Interval` sent its position 1.5 ms (p50) after the scheduled
//! instant. Latency counts from the scheduled instant, so that lateness was
//! added to every echo and hid sub-millisecond servers behind a 1.5 ms floor.
//!
//! One pacer thread walks the clients' schedule in time order and sleeps with
//! `std::thread::sleep` (nanosleep) until each deadline. Its timer slack is
//! set to 1 ns (the default 50 µs is added to every sleep), and it sleeps
//! only until [`SPIN_WINDOW`] before a deadline and spins the rest: on this
//! virtual machine a 1 ms sleep woke 87 µs late (p50) and 196 µs (p99),
//! which is the order of the latencies measured at 20 clients. Spinning is
//! capped at [`SPIN_SHARE`] of the pacer's wall time, so at high rates
//! (ticks a few microseconds apart) it does not take a core from the server. A pacer that falls behind sends the
//! overdue ticks at once (the offered load stays nominal, like
//! `MissedTickBehavior::Burst`), and the lateness still shows in the report.
//!
//! For a client whose socket it was given ([`Pacer::add_direct`]: legacy
//! clients, whose 4-byte sends are fixed by their sequence number), the pacer
//! writes the position itself and wakes nobody. Handing every tick to the
//! client's task costs a wake-up of a tokio worker per send: 0.18 ms (p50)
//! of lateness at 20 clients, and at 2,000 clients more than 100 ms (p99)
//! once the workers are busy reading, all of it counted as latency against
//! the server. The pacer publishes the sequence number before the write
//! ([`Direct::sent`]), so the task, which reads it before looking at any
//! echo, never meets an echo of a send it does not know about; the send
//! time follows from the schedule. If a write would block or fails, the
//! rest of that send and every later one go back to the task, in order.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::encode_seq;
use crate::stats::Latencies;

/// What the pacer tells a client task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Send your next position, scheduled at `at`.
    Due { at: Instant },
    /// The pacer's write of sequence number `seq` stopped after `from` of
    /// its bytes (it would have blocked, or failed): send the rest. Every
    /// later tick comes as [`Tick::Due`].
    Unwritten { seq: u32, from: usize },
}

/// A legacy client's socket, shared with the pacer so that it writes the
/// client's positions itself, and what it wrote.
#[derive(Debug)]
pub(crate) struct Direct {
    /// The pacer's copy of the socket; the client takes it back (closing
    /// it) when it ends.
    socket: Mutex<Option<TcpStream>>,
    /// The last sequence number the pacer wrote (or began to write).
    sent: AtomicU32,
    /// When the client's first tick falls after the load phase's start;
    /// tick `seq` falls `(seq - 1)` periods later.
    offset: Duration,
    period: Duration,
}

impl Direct {
    /// Hands the pacer its copy of the socket.
    pub(crate) fn connect(&self, socket: TcpStream) {
        *self.lock() = Some(socket);
    }

    /// Closes the pacer's copy: the pacer sends nothing more itself.
    pub(crate) fn disconnect(&self) {
        self.lock().take();
    }

    /// The last sequence number the pacer has sent.
    pub(crate) fn sent(&self) -> u32 {
        self.sent.load(Ordering::Acquire)
    }

    /// When send number `seq` was scheduled, the load phase starting at `start`.
    pub(crate) fn scheduled(&self, start: Instant, seq: u32) -> Instant {
        start + self.offset + self.period * seq.saturating_sub(1)
    }

    fn lock(&self) -> MutexGuard<'_, Option<TcpStream>> {
        self.socket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Entry {
    tx: UnboundedSender<Tick>,
    offset: Duration,
    /// Legacy clients: the socket the pacer writes to, while it may.
    direct: Option<Arc<Direct>>,
    /// Ticks handed out so far (the last one's sequence number).
    ticks: u32,
}

/// The ticks of every client, in client order; client `i`'s ticks fall at
/// `start + offsets[i] + k * period`.
pub(crate) struct Pacer {
    entries: Vec<Entry>,
    period: Duration,
}

impl Pacer {
    pub(crate) fn new(period: Duration) -> Self {
        Pacer {
            entries: Vec::new(),
            period,
        }
    }

    /// Adds a client whose ticks fall `offset` after each period's start;
    /// returns where they arrive. Offsets must not decrease from one client
    /// to the next (the schedule is walked in this order).
    pub(crate) fn add(&mut self, offset: Duration) -> UnboundedReceiver<Tick> {
        self.push(offset, None)
    }

    /// [`Pacer::add`] for a legacy client: once it hands over its socket
    /// ([`Direct::connect`]), the pacer writes its positions itself.
    pub(crate) fn add_direct(
        &mut self,
        offset: Duration,
    ) -> (UnboundedReceiver<Tick>, Arc<Direct>) {
        let direct = Arc::new(Direct {
            socket: Mutex::new(None),
            sent: AtomicU32::new(0),
            offset,
            period: self.period,
        });
        (self.push(offset, Some(Arc::clone(&direct))), direct)
    }

    fn push(&mut self, offset: Duration, direct: Option<Arc<Direct>>) -> UnboundedReceiver<Tick> {
        debug_assert!(self.entries.last().is_none_or(|last| last.offset <= offset));
        let (tx, rx) = unbounded_channel();
        self.entries.push(Entry {
            tx,
            offset,
            direct,
            ticks: 0,
        });
        rx
    }

    /// Sends every tick in `[start, end)` from a new thread, then ends (which
    /// closes every client's channel). The thread returns how late its own
    /// writes were.
    pub(crate) fn start(self, start: Instant, end: Instant) -> thread::JoinHandle<Latencies> {
        thread::Builder::new()
            .name("pacer".into())
            .spawn(move || self.run(start, end))
            .expect("spawning the pacer thread")
    }

    fn run(mut self, start: Instant, end: Instant) -> Latencies {
        // Best effort: without it sleeps are only less precise.
        let _ = nix::sys::prctl::set_timerslack(1);
        let mut lateness = Latencies::new();
        let mut clock = Clock::new(Instant::now());
        let mut period_start = start;
        while period_start < end {
            for entry in &mut self.entries {
                let deadline = period_start + entry.offset;
                if deadline >= end {
                    break;
                }
                clock.wait_until(deadline);
                entry.tick(deadline, &mut lateness);
            }
            period_start += self.period;
        }
        lateness
    }
}

/// How long before a deadline the pacer stops sleeping and spins.
const SPIN_WINDOW: Duration = Duration::from_micros(250);
/// The most of its wall time the pacer may spend spinning.
const SPIN_SHARE: u32 = 20; // 1/20 = 5 %
/// The shortest sleep once the spin budget is spent. At 10,000 clients the
/// ticks fall 10 µs apart, and a sleep per tick (a timer and a context
/// switch each, more than the gap on this virtual machine) took about 30 %
/// of the generator's CPU (perf, 2026-12-06). A shorter wait is taken as
/// this long, and the ticks due meanwhile go out together; their lateness
/// is recorded as ever. Ticks 5 ms apart (20 clients) never meet it.
const MIN_SLEEP: Duration = Duration::from_micros(200);

/// Waits for deadlines: a sleep, then a spin within the budget.
struct Clock {
    began: Instant,
    spun: Duration,
}

impl Clock {
    fn new(began: Instant) -> Self {
        Clock {
            began,
            spun: Duration::ZERO,
        }
    }

    fn wait_until(&mut self, deadline: Instant) {
        let now = Instant::now();
        if deadline <= now {
            return;
        }
        let budget = (now - self.began) / SPIN_SHARE;
        let spin = SPIN_WINDOW.min(budget.saturating_sub(self.spun));
        if deadline - now > spin {
            let nap = deadline - now - spin;
            thread::sleep(if spin.is_zero() {
                nap.max(MIN_SLEEP)
            } else {
                nap
            });
        }
        let spin_start = Instant::now();
        while Instant::now() < deadline {
            std::hint::spin_loop();
        }
        self.spun += Instant::now().saturating_duration_since(spin_start);
    }
}

impl Entry {
    fn tick(&mut self, at: Instant, lateness: &mut Latencies) {
        self.ticks += 1;
        let seq = self.ticks;
        let written = self.direct.as_ref().and_then(|direct| {
            let mut socket = direct.lock();
            let stream = socket.as_mut()?;
            lateness.record(Instant::now().saturating_duration_since(at));
            // Published before the write, so the echo cannot beat the news.
            direct.sent.store(seq, Ordering::Release);
            let bytes = encode_seq(seq).to_bytes();
            let written = loop {
                match stream.write(&bytes) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break 0,
                }
            };
            Some((written, bytes.len()))
        });
        // A client that died dropped its receiver: nothing to do then.
        match written {
            None => {
                let _ = self.tx.send(Tick::Due { at });
            }
            Some((written, len)) if written < len => {
                self.direct = None;
                let _ = self.tx.send(Tick::Unwritten { seq, from: written });
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_gets_its_ticks_in_order_and_none_past_the_end() {
        let period = Duration::from_millis(10);
        let mut pacer = Pacer::new(period);
        let offsets = [0, 3, 6].map(Duration::from_millis);
        let mut receivers: Vec<_> = offsets.iter().map(|&o| pacer.add(o)).collect();
        let start = Instant::now() + Duration::from_millis(5);
        let end = start + Duration::from_millis(35);
        pacer.start(start, end).join().unwrap();
        for (rx, offset) in receivers.iter_mut().zip(offsets) {
            let mut ticks = Vec::new();
            while let Ok(Tick::Due { at }) = rx.try_recv() {
                ticks.push(at);
            }
            let expected: Vec<Instant> = (0..4)
                .map(|k| start + offset + period * k)
                .filter(|&t| t < end)
                .collect();
            assert_eq!(ticks, expected);
            assert!(rx.is_closed(), "the pacer closes the channel when done");
        }
    }

    #[test]
    fn waits_reach_their_deadline_and_spin_within_their_share() {
        // 100 ms of history: a 5 ms spin budget to begin with.
        let began = Instant::now() - Duration::from_millis(100);
        let mut clock = Clock::new(began);
        for _ in 0..100 {
            let deadline = Instant::now() + Duration::from_micros(400);
            clock.wait_until(deadline);
            assert!(Instant::now() >= deadline, "never early");
        }
        assert!(clock.spun > Duration::ZERO, "spun before some deadline");
        assert!(
            clock.spun <= began.elapsed() / SPIN_SHARE + SPIN_WINDOW,
            "spun {:?} in {:?}",
            clock.spun,
            began.elapsed()
        );
    }

    #[test]
    fn with_the_spin_budget_spent_a_short_wait_is_one_minimum_sleep() {
        let mut clock = Clock::new(Instant::now() - Duration::from_millis(100));
        clock.spun = Duration::from_secs(1);
        let before = Instant::now();
        clock.wait_until(before + Duration::from_micros(10));
        assert!(before.elapsed() >= MIN_SLEEP, "{:?}", before.elapsed());
        assert!(
            clock.spun < Duration::from_secs(1) + Duration::from_micros(5),
            "no spin"
        );
    }

    fn connected_pair() -> (TcpStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // As a tokio stream's socket is.
        client.set_nonblocking(true).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn a_direct_client_gets_its_numbered_positions_written_without_a_tick() {
        let period = Duration::from_millis(2);
        let mut pacer = Pacer::new(period);
        let (mut rx, direct) = pacer.add_direct(Duration::ZERO);
        let (client, mut server) = connected_pair();
        direct.connect(client);
        let start = Instant::now() + Duration::from_millis(5);
        let end = start + period * 10;
        let lateness = pacer.start(start, end).join().unwrap();
        assert_eq!(direct.sent(), 10);
        assert_eq!(lateness.count(), 10);
        assert_eq!(direct.scheduled(start, 3), start + period * 2);
        assert!(rx.try_recv().is_err(), "nothing for the task to do");
        direct.disconnect();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut server, &mut got).unwrap();
        let expected: Vec<u8> = (1..=10)
            .flat_map(|seq| encode_seq(seq).to_bytes())
            .collect();
        assert_eq!(got, expected, "closed once the client took the socket back");
    }

    #[test]
    fn a_failed_write_hands_the_rest_and_every_later_send_to_the_task() {
        let period = Duration::from_millis(2);
        let mut pacer = Pacer::new(period);
        let (mut rx, direct) = pacer.add_direct(Duration::ZERO);
        let (client, server) = connected_pair();
        direct.connect(client);
        // The peer is gone: a write soon fails (reset, then broken pipe).
        drop(server);
        let start = Instant::now() + Duration::from_millis(5);
        let end = start + period * 20;
        pacer.start(start, end).join().unwrap();
        let mut ticks = Vec::new();
        while let Ok(tick) = rx.try_recv() {
            ticks.push(tick);
        }
        let Some(Tick::Unwritten { seq, from }) = ticks.first().copied() else {
            panic!("expected the failed write first, got {ticks:?}");
        };
        assert!(from < 4);
        assert_eq!(direct.sent(), seq, "nothing written after the failure");
        assert_eq!(
            ticks.len() as u32 - 1,
            20 - seq,
            "every later tick is the task's"
        );
        assert!(ticks[1..].iter().all(|t| matches!(t, Tick::Due { .. })));
    }
}
