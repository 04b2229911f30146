//! Breadth-first search over worlds, pruned by [`World::digest`], with every invariant checked
//! in every state reached. The frontier of each depth is split between the machine's cores.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::invariants::{Checker, Coverage};
use crate::steps::path;
use crate::world::{Ctx, World};

/// What a search saw.
#[derive(Debug, Default)]
pub struct Stats {
    /// Distinct states explored (each checked), the initial one included.
    pub states: usize,
    /// New states first reached at each depth (index 0: the initial world).
    pub per_depth: Vec<usize>,
    /// The deepest level with a new state.
    pub depth: usize,
    /// The largest frontier (states of one depth).
    pub max_frontier: usize,
    /// Transitions taken (successors built, duplicates included).
    pub transitions: usize,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "explored {} states (depth {}, max frontier {}, {} transitions) in {:.1?}; \
             new per depth: {:?}",
            self.states,
            self.depth,
            self.max_frontier,
            self.transitions,
            self.elapsed,
            self.per_depth
        )
    }
}

/// Shards of the set of digests seen.
const SHARDS: usize = 64;

/// Worlds a thread takes from the frontier at a time.
const BATCH: usize = 32;

/// Explores every world reachable from the initial one in at most `depth` actions, checking
/// `check` in each. Stops at the first violation: `Err` names it and the path to it.
#[allow(clippy::disallowed_methods)] // the search reports its own wall time; no machine reads it.
pub fn explore_with(ctx: &Ctx, depth: usize, check: &Checker) -> Result<Stats, String> {
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let root = World::new(ctx);
    // The digests seen, in shards so that the threads seldom wait on each other.
    let seen: Vec<Mutex<HashSet<u128>>> = (0..SHARDS).map(|_| Mutex::default()).collect();
    let first_seen = |digest: u128| {
        let shard = &seen[(digest % SHARDS as u128) as usize];
        shard.lock().expect("no thread panicked").insert(digest)
    };
    first_seen(root.digest());
    let mut stats = Stats::default();
    let mut frontier = vec![root];
    for level in 0..=depth {
        if frontier.is_empty() {
            break;
        }
        stats.per_depth.push(frontier.len());
        stats.states += frontier.len();
        stats.max_frontier = stats.max_frontier.max(frontier.len());
        stats.depth = level;
        let expand = level < depth;
        ctx.memo.rotate();
        // Threads take batches of the frontier in turn, so none idles while another works.
        let taken = AtomicUsize::new(0);
        let results: Vec<Result<(Vec<World>, usize), String>> = std::thread::scope(|s| {
            let (frontier, taken, first_seen) = (&frontier, &taken, &first_seen);
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(move || {
                        let mut next = Vec::new();
                        let mut transitions = 0;
                        loop {
                            let from = taken.fetch_add(BATCH, Ordering::Relaxed);
                            if from >= frontier.len() {
                                return Ok((next, transitions));
                            }
                            for world in &frontier[from..(from + BATCH).min(frontier.len())] {
                                if let Err(why) = check.check(world, ctx) {
                                    taken.store(frontier.len(), Ordering::Relaxed);
                                    return Err(format!(
                                        "invariant violated after {level} steps: {why}\npath:\n{}",
                                        path(&world.trace)
                                    ));
                                }
                                if !expand {
                                    continue;
                                }
                                for action in world.actions(ctx) {
                                    let successor = world.after(ctx, &action);
                                    transitions += 1;
                                    if first_seen(successor.digest()) {
                                        next.push(successor);
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a search thread panicked")).collect()
        });
        frontier = Vec::new();
        for result in results {
            let (next, transitions) = result?;
            stats.transitions += transitions;
            frontier.extend(next);
        }
    }
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// [`explore_with`] every invariant; also returns how often each had something to check.
pub fn explore(ctx: &Ctx, depth: usize) -> Result<(Stats, Coverage), String> {
    let checker = Checker::default();
    let stats = explore_with(ctx, depth, &checker)?;
    Ok((stats, checker.coverage))
}
