//! Remote player entities by id, looked up once per received position.
//!
//! The server hands ids out in order (wrapping only at `i32::MAX`, a
//! cluster node within its own slice), so the ids alive at one time sit in
//! a window. Ids inside the window are a `Vec` index away from their entity
//! (`id - base`); an id too far from it (more than [`MAX_DENSE_SPAN`]
//! slots) goes to a small map instead, so a stray id never allocates a huge
//! table. The window follows the live ids: it reaches down when a lower id
//! arrives, and drops its empty front once that is half of it.

use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use shared::ClientId;

/// The most slots the dense window holds (8 bytes each: 2 MiB at most).
pub const MAX_DENSE_SPAN: usize = 1 << 18;

/// Remote player entities by id.
#[derive(Resource, Debug, Default)]
pub struct PlayerIndex {
    /// The id of `slots[0]`.
    base: i64,
    slots: Vec<Option<Entity>>,
    /// Ids outside the window when they arrived.
    others: HashMap<ClientId, Entity>,
    /// Entities in `slots`.
    in_slots: usize,
}

impl PlayerIndex {
    /// How many players the index holds.
    pub fn len(&self) -> usize {
        self.in_slots + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `id`'s slot, if it is inside the window.
    fn slot(&self, id: ClientId) -> Option<usize> {
        let offset = usize::try_from(i64::from(id) - self.base).ok()?;
        (offset < self.slots.len()).then_some(offset)
    }

    pub fn get(&self, id: ClientId) -> Option<Entity> {
        if let Some(slot) = self.slot(id)
            && let Some(entity) = self.slots[slot]
        {
            return Some(entity);
        }
        if self.others.is_empty() {
            return None;
        }
        self.others.get(&id).copied()
    }

    pub fn contains(&self, id: ClientId) -> bool {
        self.get(id).is_some()
    }

    /// Stores `id`'s entity; returns the one it replaces.
    pub fn insert(&mut self, id: ClientId, entity: Entity) -> Option<Entity> {
        let previous = self.others.remove(&id);
        match self.reach(id) {
            Some(slot) => {
                let replaced = self.slots[slot].replace(entity);
                if replaced.is_none() {
                    self.in_slots += 1;
                }
                replaced.or(previous)
            }
            None => self.others.insert(id, entity).or(previous),
        }
    }

    /// Widens the window to cover `id` if that keeps it within
    /// [`MAX_DENSE_SPAN`]; returns `id`'s slot, or `None` if it stays out.
    fn reach(&mut self, id: ClientId) -> Option<usize> {
        let id = i64::from(id);
        if self.slots.is_empty() {
            self.base = id;
            self.slots.push(None);
            return Some(0);
        }
        let end = self.base + self.slots.len() as i64;
        if id < self.base {
            let grow = usize::try_from(self.base - id).ok()?;
            if self.slots.len() + grow > MAX_DENSE_SPAN {
                return None;
            }
            self.slots.splice(0..0, std::iter::repeat_n(None, grow));
            self.base = id;
            return Some(0);
        }
        let offset = usize::try_from(id - self.base).ok()?;
        if id >= end {
            if offset >= MAX_DENSE_SPAN {
                return None;
            }
            self.slots.resize(offset + 1, None);
        }
        Some(offset)
    }

    /// Forgets `id`; returns its entity.
    pub fn remove(&mut self, id: ClientId) -> Option<Entity> {
        if let Some(slot) = self.slot(id)
            && let Some(entity) = self.slots[slot].take()
        {
            self.in_slots -= 1;
            self.shrink();
            return Some(entity);
        }
        self.others.remove(&id)
    }

    /// Keeps the players `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(ClientId, Entity) -> bool) {
        let base = self.base;
        for (offset, slot) in self.slots.iter_mut().enumerate() {
            if let Some(entity) = *slot
                && !keep(id_at(base, offset), entity)
            {
                *slot = None;
                self.in_slots -= 1;
            }
        }
        self.others.retain(|&id, &mut entity| keep(id, entity));
        self.shrink();
    }

    /// Every player, by id (the window in id order, then the others).
    pub fn iter(&self) -> impl Iterator<Item = (ClientId, Entity)> + '_ {
        let base = self.base;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(offset, slot)| slot.map(|entity| (id_at(base, offset), entity)))
            .chain(self.others.iter().map(|(&id, &entity)| (id, entity)))
    }

    /// Empties the index; returns what it held.
    pub fn drain(&mut self) -> Vec<(ClientId, Entity)> {
        let all = self.iter().collect();
        *self = PlayerIndex::default();
        all
    }

    /// Drops the window's empty ends: all of it once it holds nobody, the
    /// front once it is half the window (so ids moving up do not grow it
    /// forever, and each slot is moved at most once per doubling).
    fn shrink(&mut self) {
        if self.in_slots == 0 {
            self.slots.clear();
            return;
        }
        while self.slots.last() == Some(&None) {
            self.slots.pop();
        }
        let empty_front = self.slots.iter().take_while(|slot| slot.is_none()).count();
        if empty_front * 2 >= self.slots.len() {
            self.slots.drain(..empty_front);
            self.base += empty_front as i64;
        }
    }
}

/// The id of slot `offset` in a window starting at `base` (always a valid
/// id: only ids were ever stored there).
fn id_at(base: i64, offset: usize) -> ClientId {
    (base + offset as i64) as ClientId
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(n: u32) -> Entity {
        Entity::from_raw_u32(n).expect("a valid index")
    }

    /// The index agrees with a plain map after every step.
    fn check(index: &PlayerIndex, expected: &std::collections::BTreeMap<ClientId, Entity>) {
        assert_eq!(index.len(), expected.len());
        for (&id, &e) in expected {
            assert_eq!(index.get(id), Some(e), "id {id}");
        }
        let mut all: Vec<_> = index.iter().collect();
        all.sort();
        assert_eq!(
            all,
            expected.iter().map(|(&i, &e)| (i, e)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn finds_what_it_stores_in_any_order() {
        let mut index = PlayerIndex::default();
        let mut expected = std::collections::BTreeMap::new();
        // Out of order, as a snapshot lists them.
        for (n, id) in [50, 7, 51, 1, 3000, 2, 49].into_iter().enumerate() {
            assert_eq!(index.insert(id, entity(n as u32)), None);
            expected.insert(id, entity(n as u32));
            check(&index, &expected);
        }
        assert_eq!(index.get(0), None);
        assert_eq!(index.get(8), None);
        assert_eq!(index.get(3001), None);
        assert_eq!(index.get(-5), None);
        assert!(index.contains(3000));
        assert_eq!(index.insert(7, entity(99)), Some(entity(1)));
        assert_eq!(index.len(), 7);
    }

    #[test]
    fn far_ids_go_to_the_map_and_still_resolve() {
        let mut index = PlayerIndex::default();
        let mut expected = std::collections::BTreeMap::new();
        for (n, id) in [10, ClientId::MAX - 1, 1, ClientId::MIN, 1 << 30, 11]
            .into_iter()
            .enumerate()
        {
            index.insert(id, entity(n as u32));
            expected.insert(id, entity(n as u32));
            check(&index, &expected);
        }
        assert!(index.slots.len() <= MAX_DENSE_SPAN);
        assert_eq!(index.remove(ClientId::MAX - 1), Some(entity(1)));
        expected.remove(&(ClientId::MAX - 1));
        check(&index, &expected);
        assert_eq!(index.remove(ClientId::MAX - 1), None);
    }

    #[test]
    fn an_id_stored_far_away_is_found_once_the_window_reaches_it() {
        let mut index = PlayerIndex::default();
        index.insert(1, entity(1));
        let far = 1 + MAX_DENSE_SPAN as ClientId;
        index.insert(far, entity(2));
        // Removing 1 empties the window; the next id starts it near `far`.
        index.remove(1);
        index.insert(far - 5, entity(3));
        assert_eq!(index.get(far), Some(entity(2)));
        assert_eq!(index.insert(far, entity(4)), Some(entity(2)));
        assert_eq!(index.len(), 2);
        assert_eq!(index.remove(far), Some(entity(4)));
        assert_eq!(index.get(far), None);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn the_window_follows_ids_moving_up() {
        let mut index = PlayerIndex::default();
        // Churn: 100 players online, a new one joins as the oldest leaves.
        for id in 1..=100 {
            index.insert(id, entity(id as u32));
        }
        for id in 101..=100_000 {
            index.insert(id, entity(id as u32));
            assert_eq!(index.remove(id - 100), Some(entity((id - 100) as u32)));
        }
        assert_eq!(index.len(), 100);
        assert!(index.others.is_empty(), "every id stayed in the window");
        assert!(index.slots.len() <= 200, "window of {}", index.slots.len());
        assert_eq!(index.get(100_000), Some(entity(100_000)));
        assert_eq!(index.get(99_900), None);
        assert_eq!(index.get(99_901), Some(entity(99_901)));
    }

    #[test]
    fn retain_and_drain() {
        let mut index = PlayerIndex::default();
        for id in [5, 6, 7, 8, 1 << 29] {
            index.insert(id, entity(id as u32));
        }
        index.retain(|id, _| id % 2 == 0);
        let mut kept: Vec<ClientId> = index.iter().map(|(id, _)| id).collect();
        kept.sort();
        assert_eq!(kept, vec![6, 8, 1 << 29]);
        assert_eq!(index.get(5), None);
        assert_eq!(index.get(6), Some(entity(6)));
        let mut drained: Vec<ClientId> = index.drain().into_iter().map(|(id, _)| id).collect();
        drained.sort();
        assert_eq!(drained, vec![6, 8, 1 << 29]);
        assert!(index.is_empty());
        assert_eq!(index.get(6), None);
    }
}
