//! The engine lock attacked by its own readers: `status`, the checklist, bundles and the
//! console ask "is an engine running?" by taking the lock for an instant
//! (`holder_info`). An engine starting in that instant must not be told that another
//! engine runs: it would exit (a daemon) or report a daemon that does not exist and never
//! start its own (a console), and nothing would be stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use opsconsole::sync::lock::{EngineLock, LockError, Role, holder_info};

#[test]
fn a_reader_asking_who_holds_the_lock_never_makes_an_engine_think_another_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().to_path_buf();
    // Readers asking all the time, as a status loop, the checklist and a second console do.
    let stop = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (ws, stop, asked) = (ws.clone(), stop.clone(), asked.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = holder_info(&ws);
                    asked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    while asked.load(Ordering::Relaxed) < 100 {
        std::thread::yield_now();
    }
    let mut refused = Vec::new();
    for _ in 0..5000 {
        match EngineLock::acquire_as(&ws, Role::Daemon) {
            Ok(lock) => drop(lock),
            Err(e @ LockError::Held { .. }) => refused.push(e.to_string()),
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader");
    }
    assert!(
        refused.is_empty(),
        "{} of 5000 starts were refused while no engine ran, e.g. {:?}",
        refused.len(),
        refused.first()
    );
    // A real holder is still refused.
    let held = EngineLock::acquire_as(&ws, Role::Console).expect("first");
    match EngineLock::acquire_as(&ws, Role::Daemon) {
        Err(LockError::Held { pid, role, .. }) => {
            assert_eq!((pid, role), (Some(std::process::id()), Some(Role::Console)))
        }
        other => panic!("a second engine started: {other:?}"),
    }
    drop(held);
}

#[test]
fn readers_asking_at_the_same_moment_never_see_an_engine_that_is_not_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().to_path_buf();
    // The lock file exists, as after any engine ran (and, killed, left its pid behind).
    drop(EngineLock::acquire_as(&ws, Role::Daemon).expect("lock"));
    std::fs::write(opsconsole::sync::lock::lock_path(&ws), "999999 daemon\n").expect("stale pid");
    let seen: Vec<_> = (0..3)
        .map(|_| {
            let ws = ws.clone();
            std::thread::spawn(move || (0..3000).filter_map(|_| holder_info(&ws)).collect::<Vec<_>>())
        })
        .collect();
    let seen: Vec<_> = seen.into_iter().flat_map(|t| t.join().expect("reader")).collect();
    assert!(seen.is_empty(), "{} answers named an engine while none ran, e.g. {:?}", seen.len(), seen.first());
}

/// The job markers the pre-shutdown checklist reads (`prune` holds one while it runs) have
/// readers too: `running` takes each marker's lock for an instant and removes the ones
/// nobody holds. A marker being created in that instant must not be taken for stale: it
/// would vanish while its prune runs, and the checklist would let the VM shut down.
#[test]
fn a_job_marker_is_never_removed_as_stale_while_it_is_being_taken() {
    use opsconsole::joblock::{hold, running};
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (ws, stop) = (ws.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = running(&ws);
            }
        })
    };
    let me = std::process::id();
    let mut lost = 0;
    for _ in 0..2000 {
        match hold(&ws, "prune") {
            Ok(marker) => {
                if !running(&ws).contains(&("prune".to_string(), me)) {
                    lost += 1;
                }
                drop(marker);
            }
            Err(_) => lost += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    assert_eq!(lost, 0, "{lost} of 2000 running prunes had no marker the checklist could see");
}
