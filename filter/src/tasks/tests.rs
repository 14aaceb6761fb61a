use super::*;
use crate::host::mock::MockHost;

fn record() -> TaskRecord {
    TaskRecord::new(Some("movies".into()), "settingsUpdate")
}

#[test]
fn uids_increase_and_records_round_trip() {
    let mut host = MockHost::default();
    assert_eq!(register_here(&mut host, &record()), Some(0));
    assert_eq!(register_here(&mut host, &record()), Some(1));
    assert_eq!(lookup(&host, 1), Some(record()));
    assert_eq!(lookup(&host, 2), None);
}

#[test]
fn leased_uids_are_taken_in_order_across_leases() {
    let mut host = MockHost::default();
    assert_eq!(take_leased(&mut host), None);
    assert!(add_lease(
        &mut host,
        UidLease {
            first: 10,
            last: 11
        }
    ));
    assert!(add_lease(
        &mut host,
        UidLease {
            first: 50,
            last: 50
        }
    ));
    assert_eq!(leased_remaining(&host), 3);
    let taken: Vec<Option<u32>> = (0..4).map(|_| take_leased(&mut host)).collect();
    assert_eq!(taken, [Some(10), Some(11), Some(50), None]);
}

#[test]
fn the_outbox_keeps_what_was_not_handed_over() {
    let mut host = MockHost::default();
    outbox_add(&mut host, 7);
    outbox_add(&mut host, 9);
    outbox_remove(&mut host, 7);
    assert_eq!(outbox(&host), [9]);
}
