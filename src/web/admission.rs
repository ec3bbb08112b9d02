//! Fair-share admission: who may start a request now.
//!
//! The server's capacity is its requests in flight (`max_concurrent_requests`). A request in
//! flight holds what every other request needs while it waits for the database writer and the
//! cores, so the number in flight is what a flood takes from everyone else, and the one measure
//! that rises exactly when the server is full whatever the bottleneck (the SQLite writer, a
//! Postgres pool, the CPU). A fixed per-key rate would refuse a busy app on an idle server
//! (at 200 requests a second it capped one key at 2,000 logs a second against a capacity over
//! ten times that); shares of what is in flight refuse only when the server is full, and only
//! those holding more than their part.
//!
//! The slots are split like this:
//! - **Reads the SDKs depend on** (`/configs`, `/configs/{key}/version/{n}`, `/api/v1/config`,
//!   `/prompts`, `/prompt-ab-tests`) are admitted while any slot is free: the same key's writes
//!   being busy never refuses them (a refused pinned config lookup makes the `fallom` SDK raise).
//! - **Requests without a key** (the sign-in form, dashboard pages, anything else) share at
//!   most an eighth of the slots, so however many arrive (or however slowly they send their
//!   bodies) they never hold the slots API clients need.
//! - **Requests with a key this server has not verified within the hour** (a new key, or a bad
//!   one) share another eighth: a new key is not locked out by a flood of keyless requests, and
//!   bad keys are also held to their address's failed-auth budget before any lookup.
//! - A **reserve** of another eighth is left for those reads and for newcomer projects.
//! - **Everything else with a key** shares the rest: each project that has requests in flight
//!   gets an equal share, and each active key an equal part of its project's share. While one
//!   project is alone it may use all of it; a request that would take a project (or key) past
//!   its share gets `429 over_fair_share` with `Retry-After: 1`, so a noisy project is pushed
//!   back to its share while the others keep being admitted.
//! - Health checks and `/metrics` are exempt (handled before this).
//!
//! A slot is held until the response is produced (the [`Slot`] is dropped), so a request
//! cancelled half way still gives it back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Who a request is, for admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimant {
    /// One of the SDKs' config and prompt reads.
    SdkRead,
    /// A request with a key verified here lately: its project and its key (by hash).
    Key { project_id: i64, key_hash: String },
    /// A key not verified here within the hour: new, or bad.
    Unverified,
    /// No key.
    Anonymous,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot (or every slot of the keyless or unverified share) is taken: 503.
    Full,
    /// The server is contended and this project or key holds its share already: 429.
    OverShare { share: usize },
}

/// The slots in flight, shared by every request of this replica.
pub struct Admission {
    capacity: usize,
    anonymous_slots: usize,
    unverified_slots: usize,
    keyed_slots: usize,
    in_flight: Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    total: usize,
    anonymous: usize,
    unverified: usize,
    projects: HashMap<i64, ProjectLoad>,
}

#[derive(Default)]
struct ProjectLoad {
    total: usize,
    keys: HashMap<String, usize>,
}

impl Admission {
    pub fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        // at least one slot for each kind of request, however small the capacity
        let eighth = capacity / 8;
        Arc::new(Self {
            capacity,
            anonymous_slots: eighth.max(1),
            unverified_slots: eighth.max(1),
            keyed_slots: capacity.saturating_sub(3 * eighth).max(1),
            in_flight: Mutex::new(InFlight::default()),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Takes a slot for `claimant`, or says why not.
    pub fn admit(self: &Arc<Self>, claimant: Claimant) -> Result<Slot, Refusal> {
        let mut f = self.in_flight.lock().expect("admission lock");
        if f.total >= self.capacity {
            return Err(Refusal::Full);
        }
        match &claimant {
            Claimant::SdkRead => {}
            Claimant::Anonymous => take_within(&mut f.anonymous, self.anonymous_slots)?,
            Claimant::Unverified => take_within(&mut f.unverified, self.unverified_slots)?,
            Claimant::Key { project_id, key_hash } => {
                let newcomer = usize::from(!f.projects.contains_key(project_id));
                let share = (self.keyed_slots / (f.projects.len() + newcomer)).max(1);
                let project = f.projects.entry(*project_id).or_default();
                if project.total >= share {
                    return Err(Refusal::OverShare { share });
                }
                let key_newcomer = usize::from(!project.keys.contains_key(key_hash));
                let key_share = (share / (project.keys.len() + key_newcomer)).max(1);
                // (a newcomer, project or key, is never refused: its share is at least one)
                if project.keys.get(key_hash).copied().unwrap_or(0) >= key_share {
                    return Err(Refusal::OverShare { share: key_share });
                }
                project.total += 1;
                *project.keys.entry(key_hash.clone()).or_default() += 1;
            }
        }
        f.total += 1;
        Ok(Slot { admission: self.clone(), claimant })
    }

    fn release(&self, claimant: &Claimant) {
        let mut f = self.in_flight.lock().expect("admission lock");
        f.total -= 1;
        match claimant {
            Claimant::SdkRead => {}
            Claimant::Anonymous => f.anonymous -= 1,
            Claimant::Unverified => f.unverified -= 1,
            Claimant::Key { project_id, key_hash } => {
                let Some(project) = f.projects.get_mut(project_id) else { return };
                project.total -= 1;
                if let Some(n) = project.keys.get_mut(key_hash) {
                    *n -= 1;
                    if *n == 0 {
                        project.keys.remove(key_hash);
                    }
                }
                // only projects with requests in flight count as active
                if project.total == 0 {
                    f.projects.remove(project_id);
                }
            }
        }
    }
}

/// One more of a share holding `taken` of its `slots`, or [`Refusal::Full`].
fn take_within(taken: &mut usize, slots: usize) -> Result<(), Refusal> {
    if *taken >= slots {
        return Err(Refusal::Full);
    }
    *taken += 1;
    Ok(())
}

/// A slot in flight; dropping it gives the slot back.
pub struct Slot {
    admission: Arc<Admission>,
    claimant: Claimant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(&self.claimant);
    }
}

/// The SDKs' reads that admission never refuses for the same key's writes (see the module).
pub fn is_sdk_read(method: &axum::http::Method, path: &str) -> bool {
    if method != axum::http::Method::GET {
        return false;
    }
    match path {
        "/configs" | "/api/v1/config" | "/prompts" | "/prompt-ab-tests" => true,
        _ => {
            let mut parts = path.strip_prefix("/configs/").map(|rest| rest.split('/'));
            matches!(
                parts.as_mut().map(|p| (p.next(), p.next(), p.next(), p.next())),
                Some((Some(_), Some("version"), Some(_), None))
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn key(project_id: i64, key: &str) -> Claimant {
        Claimant::Key { project_id, key_hash: key.into() }
    }

    #[test]
    fn one_project_alone_may_use_everything_but_the_reserves() {
        let admission = Admission::new(64); // 8 keyless, 8 unverified, 8 reserve, 40 keyed
        let slots: Vec<Slot> = (0..40).map(|_| admission.admit(key(1, "a")).unwrap()).collect();
        assert_eq!(admission.admit(key(1, "a")).err(), Some(Refusal::OverShare { share: 40 }));
        // the reserve still admits the SDK's reads and another project
        assert!(admission.admit(Claimant::SdkRead).is_ok());
        let other = admission.admit(key(2, "b")).unwrap();
        drop(other);
        drop(slots);
        assert!(admission.admit(key(1, "a")).is_ok(), "slots are given back on drop");
    }

    #[test]
    fn a_second_project_gets_its_share_and_pushes_the_first_back() {
        let admission = Admission::new(64);
        let mut noisy: Vec<Slot> = (0..40).map(|_| admission.admit(key(1, "a")).unwrap()).collect();
        let quiet: Vec<Slot> = (0..5).map(|_| admission.admit(key(2, "b")).unwrap()).collect();
        // two active projects: 20 each; the noisy one, at 40, is refused until under 20
        assert_eq!(admission.admit(key(1, "a")).err(), Some(Refusal::OverShare { share: 20 }));
        noisy.truncate(19);
        assert!(admission.admit(key(1, "a")).is_ok());
        assert_eq!(quiet.len(), 5);
    }

    #[test]
    fn keys_share_their_projects_part() {
        let admission = Admission::new(64);
        let _a: Vec<Slot> = (0..40).map(|_| admission.admit(key(1, "a")).unwrap()).collect();
        // project 1 is at its share: a second key of it is refused too
        assert!(matches!(admission.admit(key(1, "b")), Err(Refusal::OverShare { .. })));
        let admission = Admission::new(64);
        let _a: Vec<Slot> = (0..20).map(|_| admission.admit(key(1, "a")).unwrap()).collect();
        let _b = admission.admit(key(1, "b")).unwrap();
        // two active keys: 20 each, key a is at it
        assert_eq!(admission.admit(key(1, "a")).err(), Some(Refusal::OverShare { share: 20 }));
    }

    #[test]
    fn unauthenticated_requests_have_their_own_small_share() {
        let admission = Admission::new(64);
        let _anonymous: Vec<Slot> = (0..8).map(|_| admission.admit(Claimant::Anonymous).unwrap()).collect();
        assert_eq!(admission.admit(Claimant::Anonymous).err(), Some(Refusal::Full));
        let _unverified: Vec<Slot> = (0..8).map(|_| admission.admit(Claimant::Unverified).unwrap()).collect();
        assert_eq!(admission.admit(Claimant::Unverified).err(), Some(Refusal::Full));
        assert!(admission.admit(key(1, "a")).is_ok(), "keyed requests are not held up");
        assert!(admission.admit(Claimant::SdkRead).is_ok());
        // a tiny capacity still has a slot of each kind
        let tiny = Admission::new(2);
        let _both = (tiny.admit(key(1, "a")).unwrap(), tiny.admit(key(1, "a")).unwrap());
        assert_eq!(tiny.admit(Claimant::SdkRead).err(), Some(Refusal::Full));
    }

    #[test]
    fn a_full_server_refuses_everyone() {
        let admission = Admission::new(16);
        let _reads: Vec<Slot> = (0..16).map(|_| admission.admit(Claimant::SdkRead).unwrap()).collect();
        for claimant in [Claimant::SdkRead, Claimant::Anonymous, key(1, "a")] {
            assert_eq!(admission.admit(claimant).err(), Some(Refusal::Full));
        }
    }

    #[test]
    fn the_sdk_reads_are_recognised() {
        for path in ["/configs", "/configs/summarizer/version/3", "/api/v1/config", "/prompts", "/prompt-ab-tests"] {
            assert!(is_sdk_read(&Method::GET, path), "{path}");
        }
        for (method, path) in [
            (Method::POST, "/configs"),
            (Method::GET, "/configs/k/version/3/x"),
            (Method::GET, "/configs/k"),
            (Method::GET, "/api/v1/prompts"),
            (Method::POST, "/sessions"),
        ] {
            assert!(!is_sdk_read(&method, path), "{method} {path}");
        }
    }
}
