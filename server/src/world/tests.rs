use super::*;
use crate::fanout::legacy::LEGACY_RECORDS;
use crate::fanout::tests::records;
use crate::fanout::{BASE_QUEUE_BYTES, QUEUE_BYTES_PER_PLAYER};
use shared::legacy::PositionRecord;
use tokio_util::sync::CancellationToken;

#[test]
fn newcomer_gets_snapshot_then_every_move_in_order() {
    let world = World::new();
    let a = world.join(info(1), &LEGACY_RECORDS);
    a.set_positions(&[Position::new(1, 1)]);
    world.broadcast();
    let b = world.join(info(2), &LEGACY_RECORDS);
    assert!(
        records(&b.take_outgoing()).is_empty(),
        "snapshots go with broadcasts"
    );
    world.broadcast();
    assert_eq!(
        records(&b.take_outgoing()),
        vec![PositionRecord { id: 1, x: 1, y: 1 }]
    );
    a.set_positions(&[Position::new(2, 2), Position::new(3, 3)]);
    world.broadcast();
    assert_eq!(
        records(&b.take_outgoing()),
        vec![
            PositionRecord { id: 1, x: 2, y: 2 },
            PositionRecord { id: 1, x: 3, y: 3 }
        ]
    );
    drop(a);
    world.broadcast();
    assert_eq!(records(&b.take_outgoing()), vec![PositionRecord::leave(1)]);
    assert_eq!(world.player_count(), 1);
}

#[test]
fn slow_subscriber_is_bounded_and_converges_to_latest() {
    let world = World::new();
    let slow = world.join(info(1), &LEGACY_RECORDS);
    let mover = world.join(info(2), &LEGACY_RECORDS);
    let gone = world.join(info(3), &LEGACY_RECORDS);
    gone.set_positions(&[Position::new(9, 9)]);
    world.broadcast();
    let _ = slow.take_outgoing();
    drop(gone);
    for i in 0..100_000 {
        mover.set_positions(&[Position::new((i % 1000) as i16, 7)]);
        world.broadcast();
    }
    {
        let queued = world.queued_bytes(1).unwrap();
        assert!(
            queued <= BASE_QUEUE_BYTES + 3 * QUEUE_BYTES_PER_PLAYER + 8,
            "queue grew to {queued}"
        );
    }
    assert!(world.resync_count() > 0);
    let got = records(&slow.take_outgoing());
    assert!(
        got.contains(&PositionRecord::leave(3)),
        "the leave is never lost"
    );
    assert_eq!(
        got.iter().rev().find(|r| r.id == 2),
        Some(&PositionRecord {
            id: 2,
            x: 999,
            y: 7
        })
    );
}

#[test]
fn a_flooder_gets_a_few_moves_per_broadcast_and_the_latest_wins() {
    let world = World::new();
    let flooder = world.join(info(1), &LEGACY_RECORDS);
    let other = world.join(info(2), &LEGACY_RECORDS);
    world.broadcast();
    let _ = other.take_outgoing();
    let flood: Vec<Position> = (0..1000).map(|i| Position::new(i, 0)).collect();
    flooder.set_positions(&flood[..500]);
    other.set_positions(&[Position::new(7, 7)]);
    flooder.set_positions(&flood[500..]);
    world.broadcast();
    let got = records(&other.take_outgoing());
    let mine: Vec<i16> = got.iter().filter(|r| r.id == 1).map(|r| r.x).collect();
    let kept = MAX_MOVES_PER_BROADCAST as i16 - 1;
    let expected: Vec<i16> = (0..kept).chain([999]).collect();
    assert_eq!(mine, expected, "first moves in order, then the latest");
    assert!(got.contains(&PositionRecord { id: 2, x: 7, y: 7 }));
    // The next broadcast carries moves in full again.
    flooder.set_positions(&[Position::new(5, 5), Position::new(6, 6)]);
    world.broadcast();
    let got = records(&other.take_outgoing());
    assert_eq!(
        got,
        vec![
            PositionRecord { id: 1, x: 5, y: 5 },
            PositionRecord { id: 1, x: 6, y: 6 }
        ]
    );
}

#[test]
fn reserved_position_is_stored_one_step_inside() {
    let world = World::new();
    let a = world.join(info(1), &LEGACY_RECORDS);
    a.set_positions(&[Position::new(i16::MIN, i16::MIN)]);
    assert_eq!(world.position_of(1), Some(Position::new(-32767, -32767)));
}

/// A world whose broadcaster runs without a floor, already started (so
/// eager) when this returns; cancel the token to stop it.
async fn world_with_broadcaster() -> (Arc<World>, CancellationToken) {
    let world = World::new();
    // Time is paused in these tests but the CPU clock is not: the
    // pacer is charged only what a test charges it.
    world.lock().cpu_clock = None;
    let shutdown = CancellationToken::new();
    tokio::spawn(Arc::clone(&world).run_broadcaster(Duration::ZERO, shutdown.clone()));
    tokio::task::yield_now().await;
    (world, shutdown)
}

/// Joins legacy players `ids` and takes their first deliveries (the
/// snapshots), so that what they receive next is news.
async fn caught_up<const N: usize>(world: &Arc<World>, ids: [ClientId; N]) -> [Membership; N] {
    let members = ids.map(|id| world.join(info(id), &LEGACY_RECORDS));
    for member in &members {
        member.changed().await;
        let _ = member.take_outgoing();
    }
    members
}

/// What `watcher` receives next.
async fn next_records(watcher: &Membership) -> Vec<PositionRecord> {
    watcher.changed().await;
    records(&watcher.take_outgoing())
}

#[tokio::test(start_paused = true)]
async fn isolated_changes_go_out_without_waiting_for_a_tick() {
    let (world, shutdown) = world_with_broadcaster().await;
    let [a] = caught_up(&world, [1]).await;
    let started = Instant::now();
    for x in 1..=3 {
        a.set_positions(&[Position::new(x, 0)]);
        assert_eq!(
            next_records(&a).await,
            vec![PositionRecord { id: 1, x, y: 0 }]
        );
    }
    // The clock is paused: any sleep would have moved it.
    assert_eq!(Instant::now(), started, "no timer was waited on");
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn changes_gather_while_a_broadcast_is_still_being_taken() {
    let (world, shutdown) = world_with_broadcaster().await;
    let [a, b] = caught_up(&world, [1, 2]).await;
    a.set_positions(&[Position::new(1, 0)]);
    assert_eq!(next_records(&a).await.len(), 1);
    // `b` has not taken that broadcast yet: the next moves wait for it.
    a.set_positions(&[Position::new(2, 0)]);
    tokio::task::yield_now().await;
    a.set_positions(&[Position::new(3, 0)]);
    let held = Instant::now();
    assert_eq!(next_records(&b).await.len(), 1);
    let got = next_records(&a).await;
    assert_eq!(
        got,
        vec![
            PositionRecord { id: 1, x: 2, y: 0 },
            PositionRecord { id: 1, x: 3, y: 0 }
        ],
        "one batch"
    );
    assert_eq!(Instant::now(), held, "sent as soon as `b` took its batch");
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_lone_change_is_sent_from_the_task_that_brought_it() {
    let (world, shutdown) = world_with_broadcaster().await;
    let [a, b] = caught_up(&world, [1, 2]).await;
    // One thread, and no await between the change and the take: the
    // broadcaster task cannot have run in between.
    a.set_positions(&[Position::new(7, 0)]);
    assert_eq!(
        records(&b.take_outgoing()),
        vec![PositionRecord { id: 1, x: 7, y: 0 }]
    );
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn what_gathered_goes_out_once_all_but_the_allowed_stragglers_took_theirs() {
    let (world, shutdown) = world_with_broadcaster().await;
    let members: Vec<Membership> = (1..=128)
        .map(|id| world.join(info(id), &LEGACY_RECORDS))
        .collect();
    members[0].changed().await;
    for member in &members {
        let _ = member.take_outgoing();
    }
    // 128 joins woke everyone 128 times; with the clock paused the
    // write budget would never refill. This test is about stragglers.
    world.lock().pacer = Pacer::default();
    let started = Instant::now();
    members[0].set_positions(&[Position::new(1, 0)]);
    // Only half have taken it: the next move waits.
    for member in &members[..64] {
        assert_eq!(records(&member.take_outgoing()).len(), 1);
    }
    members[0].set_positions(&[Position::new(2, 0)]);
    assert!(records(&members[1].take_outgoing()).is_empty());
    // 128 / STRAGGLERS_PER_SUBSCRIBER = 2 may stay behind: the one that
    // leaves only those two sends the gathered move on its way.
    let stragglers = members.len() / STRAGGLERS_PER_SUBSCRIBER;
    for member in &members[64..members.len() - stragglers] {
        let _ = member.take_outgoing();
    }
    assert_eq!(
        records(&members[1].take_outgoing()),
        vec![PositionRecord { id: 1, x: 2, y: 0 }]
    );
    assert_eq!(Instant::now(), started, "no timer was waited on");
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn costly_broadcasts_are_spaced_by_what_they_cost() {
    let (world, shutdown) = world_with_broadcaster().await;
    tokio::task::yield_now().await;
    let a = world.join(info(1), &LEGACY_RECORDS);
    a.changed().await;
    let _ = a.take_outgoing();
    // As if broadcasts had just used up the CPU budget and 5 ms more.
    let owed = Duration::from_millis(5);
    world.lock().pacer.charge(pacing::CPU_BURST + owed);
    let started = Instant::now();
    a.set_positions(&[Position::new(1, 0)]);
    assert!(records(&a.take_outgoing()).is_empty(), "not at once");
    assert_eq!(next_records(&a).await.len(), 1);
    // The budget refills at BROADCAST_CPU_SHARE of a core: 10 ms.
    let waited = Instant::now() - started;
    let expected = owed.div_f64(pacing::BROADCAST_CPU_SHARE);
    assert!(
        waited >= expected && waited <= expected + Duration::from_millis(1),
        "waited {waited:?}"
    );
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_flooders_held_latest_position_goes_out_when_its_budget_allows() {
    let (world, shutdown) = world_with_broadcaster().await;
    world.set_max_moves_per_second(100);
    // The flooder watches its own echoes.
    let [flooder] = caught_up(&world, [1]).await;
    let started = Instant::now();
    for chunk in (0..100).collect::<Vec<i16>>().chunks(10) {
        let positions: Vec<Position> = chunk.iter().map(|&x| Position::new(x, 0)).collect();
        flooder.set_positions(&positions);
    }
    let mut seen = Vec::new();
    while seen.last() != Some(&99) {
        seen.extend(next_records(&flooder).await.iter().map(|r| r.x));
    }
    assert_eq!(
        seen.len(),
        MOVE_BURST as usize + 1,
        "the burst, then the latest"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    // One move every 10 ms at 100 a second; the latest was held that long.
    let waited = Instant::now() - started;
    assert!(
        waited >= Duration::from_millis(10) && waited <= Duration::from_millis(11),
        "waited {waited:?}"
    );
    assert_eq!(world.coalesced_moves(), 100 - MOVE_BURST as u64);
    shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_never_takes_holds_others_back_at_most_max_gather() {
    let (world, shutdown) = world_with_broadcaster().await;
    let a = world.join(info(1), &LEGACY_RECORDS);
    let _stuck = world.join(info(2), &LEGACY_RECORDS);
    a.changed().await;
    let _ = a.take_outgoing();
    a.set_positions(&[Position::new(1, 0)]);
    assert_eq!(next_records(&a).await.len(), 1);
    let started = Instant::now();
    a.set_positions(&[Position::new(2, 0)]);
    assert_eq!(next_records(&a).await.len(), 1);
    assert!(started.elapsed() <= MAX_GATHER);
    // The stuck subscriber is not waited for again.
    let started = Instant::now();
    a.set_positions(&[Position::new(3, 0)]);
    assert_eq!(next_records(&a).await.len(), 1);
    assert_eq!(Instant::now(), started);
    shutdown.cancel();
}
