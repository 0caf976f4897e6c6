//! Every interleaving of an owner and a thief, against the real store
//! (issue 20, item 1): the owner refreshes, loses answers and retries
//! (a lost response, or the process dying between commit and answer, which
//! the next instance answers); a thief steals any token of the chain, the
//! one the owner holds, the one before it, or an answer the owner never
//! received, and refreshes it. Time moves in steps past the grace window.
//!
//! Each sequence of up to [`LENGTH`] steps runs on its own session; then
//! both parties keep refreshing, past the grace window each time. What
//! must hold:
//! - with no thief, the owner is never refused;
//! - with a thief, the family ends by then, for both, and after the first
//!   refusal nobody gets another token;
//! - one token is delivered to both parties only within one grace window;
//! - the thief is out within two refreshes of the owner (the contract's
//!   wording, `shared/spec/API.md`): once the owner has refreshed twice
//!   since the thief's last success (or its theft, or a successor the two
//!   shared within the grace window), the thief never succeeds again.

use std::time::Duration;

use crate::helpers::{PASSWORD, Reply, Store, TestApp};
use crate::on_both_stores;

on_both_stores!(
    every_interleaving_of_an_owner_and_a_thief_either_keeps_the_owner_or_ends_the_thief
);

/// Steps per sequence: every sequence of this length or shorter is run.
const LENGTH: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The owner refreshes the token it holds and hears the answer.
    Owner,
    /// The owner refreshes, and the answer is lost (or the process died
    /// after the commit).
    OwnerLost,
    /// The thief copies the owner's token.
    StealCurrent,
    /// The thief copies the token the owner held before.
    StealPrevious,
    /// The thief takes the answer the owner lost.
    StealLost,
    /// The thief refreshes the token it holds.
    Thief,
    /// Time passes beyond the grace window.
    Wait,
    /// The instance dies; another one answers from now on.
    Restart,
}

const STEPS: [Step; 8] = [
    Step::Owner,
    Step::OwnerLost,
    Step::StealCurrent,
    Step::StealPrevious,
    Step::StealLost,
    Step::Thief,
    Step::Wait,
    Step::Restart,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Owner,
    Thief,
}

/// One sequence's world: what each party holds, and what was delivered.
#[derive(Default)]
struct World {
    /// The tokens the owner has held, the newest last.
    owner: Vec<String>,
    owner_out: bool,
    lost: Option<String>,
    thief: Option<String>,
    stolen: bool,
    /// Every token delivered, to whom, in which grace window.
    delivered: Vec<(Party, String, u32)>,
    /// Grace windows passed.
    window: u32,
    /// After the first refusal, every refresh must be refused.
    refused: bool,
    /// The owner's successful refreshes since the thief's last success or
    /// theft.
    owner_wins_since_thief: u32,
    instance: usize,
}

impl World {
    /// Whether `step` does anything here (sequences with a step that does
    /// nothing are the same as a shorter one, already run).
    fn can(&self, step: Step) -> bool {
        match step {
            Step::Owner | Step::OwnerLost => !self.owner_out,
            Step::StealCurrent => self.thief.as_ref() != self.owner.last(),
            Step::StealPrevious => self.owner.len() >= 2,
            Step::StealLost => self.lost.is_some(),
            Step::Thief => self.thief.is_some(),
            Step::Wait | Step::Restart => true,
        }
    }
}

async fn every_interleaving_of_an_owner_and_a_thief_either_keeps_the_owner_or_ends_the_thief(
    store: Store,
) {
    let first = TestApp::spawn(store).await;
    let second = first.another_instance(|_| {}).await;
    // Time moves only by the steps (the two instances share the clock): a
    // slow machine does not turn "at once" into "past the grace window".
    first.clock.freeze();
    let apps = [&first, &second];
    first.register("alice", PASSWORD).await.assert_status(201);
    let mut sequences = vec![Vec::new()];
    let mut run = 0;
    while let Some(sequence) = sequences.pop() {
        if let Some(world) = play(&apps, &sequence).await {
            run += 1;
            settle(&apps, world, &sequence).await;
            if sequence.len() < LENGTH {
                sequences.extend(STEPS.iter().map(|step| {
                    let mut longer = sequence.clone();
                    longer.push(*step);
                    longer
                }));
            }
        }
    }
    // Every step is possible from some state: far more than 8^3 run.
    assert!(run > 1_000, "only {run} sequences ran");
}

/// Plays `sequence` on a new session; `None` if one of its steps does
/// nothing.
async fn play(apps: &[&TestApp; 2], sequence: &[Step]) -> Option<World> {
    let login = apps[0].login("alice", PASSWORD).await;
    login.assert_status(200);
    let mut world = World {
        owner: vec![login.str("refresh_token").to_owned()],
        ..World::default()
    };
    for &step in sequence {
        if !world.can(step) {
            return None;
        }
        let app = apps[world.instance];
        match step {
            Step::Owner | Step::OwnerLost => {
                let presented = world.owner.last().unwrap().clone();
                let reply = app.refresh(&presented).await;
                match accepted(&mut world, &reply, sequence) {
                    Some(token) if step == Step::Owner => {
                        world
                            .delivered
                            .push((Party::Owner, token.clone(), world.window));
                        owner_succeeded(&mut world, token);
                    }
                    Some(token) => world.lost = Some(token),
                    None => world.owner_out = true,
                }
            }
            Step::StealCurrent => world.thief = world.owner.last().cloned(),
            Step::StealPrevious => world.thief = world.owner.iter().rev().nth(1).cloned(),
            Step::StealLost => world.thief = world.lost.clone(),
            Step::Thief => {
                let reply = app.refresh(world.thief.as_ref().unwrap()).await;
                world.thief = accepted(&mut world, &reply, sequence);
                if let Some(token) = &world.thief {
                    let token = token.clone();
                    world
                        .delivered
                        .push((Party::Thief, token.clone(), world.window));
                    thief_succeeded(&mut world, &token, sequence);
                }
            }
            Step::Wait => {
                app.clock
                    .advance(app.config.refresh_grace + Duration::from_secs(1));
                world.window += 1;
            }
            Step::Restart => world.instance = 1 - world.instance,
        }
        if matches!(
            step,
            Step::StealCurrent | Step::StealPrevious | Step::StealLost
        ) {
            world.stolen = true;
            world.owner_wins_since_thief = 0;
        }
    }
    Some(world)
}

/// The token a refresh answered, or `None` if it was refused; checks that
/// nothing is granted after a refusal.
fn accepted(world: &mut World, reply: &Reply, sequence: &[Step]) -> Option<String> {
    if reply.status == 200 {
        assert!(
            !world.refused,
            "{sequence:?}: a refresh was granted after one was refused"
        );
        return Some(reply.str("refresh_token").to_owned());
    }
    reply.assert_error(400, "invalid_grant");
    world.refused = true;
    None
}

/// The owner refreshed successfully and got `token`. If the thief holds the
/// same (a grace-window replay: "inside the grace window the two may share
/// a successor"), the two stand where the thief's last success left them,
/// and the count starts over.
fn owner_succeeded(world: &mut World, token: String) {
    if world.thief.as_ref() == Some(&token) {
        world.owner_wins_since_thief = 0;
    } else {
        world.owner_wins_since_thief += 1;
    }
    world.owner.push(token);
}

/// The thief refreshed successfully, and got `token`: unless the owner got
/// the same within this grace window (a share, which the contract allows),
/// the owner cannot have refreshed twice since the thief's last success.
fn thief_succeeded(world: &mut World, token: &str, sequence: &[Step]) {
    let shared = world.delivered.iter().any(|(party, same, window)| {
        *party == Party::Owner && same == token && *window == world.window
    });
    assert!(
        shared || world.owner_wins_since_thief < 2,
        "{sequence:?}: the thief got in after two refreshes of the owner"
    );
    world.owner_wins_since_thief = 0;
}

/// Both parties go on refreshing, each past the grace window; then checks
/// what must hold of `sequence`.
async fn settle(apps: &[&TestApp; 2], mut world: World, sequence: &[Step]) {
    let app = apps[world.instance];
    let rounds = [Party::Owner, Party::Thief, Party::Owner, Party::Thief];
    for party in rounds {
        app.clock
            .advance(app.config.refresh_grace + Duration::from_secs(1));
        world.window += 1;
        let held = match party {
            Party::Owner if !world.owner_out => world.owner.last().cloned(),
            Party::Thief => world.thief.clone(),
            Party::Owner => None,
        };
        let Some(held) = held else { continue };
        let reply = app.refresh(&held).await;
        let token = accepted(&mut world, &reply, sequence);
        match (party, token) {
            (Party::Owner, Some(token)) => owner_succeeded(&mut world, token),
            (Party::Owner, None) => world.owner_out = true,
            (Party::Thief, token) => {
                if let Some(token) = &token {
                    thief_succeeded(&mut world, token, sequence);
                }
                world.thief = token;
            }
        }
    }
    if world.stolen {
        assert!(
            world.thief.is_none(),
            "{sequence:?}: the thief still holds a working token"
        );
    } else {
        assert!(
            !world.owner_out && !world.refused,
            "{sequence:?}: the owner was signed out with no thief involved"
        );
    }
    for (party, token, window) in &world.delivered {
        for (other, same, other_window) in &world.delivered {
            assert!(
                party == other || token != same || window == other_window,
                "{sequence:?}: owner and thief shared a token across grace windows"
            );
        }
    }
}
