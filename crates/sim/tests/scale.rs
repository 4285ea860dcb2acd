//! The scale run on a smaller cluster: a dead node's sets all run again
//! elsewhere, and the report says how many and how fast.

#[test]
fn every_set_of_a_dead_node_runs_again() {
    let r = baton_sim::scale::run(8, 100).unwrap_or_else(|e| panic!("{e}"));
    // Set i prefers node i mod 8 first: node 0 ran 13 of the 100 sets.
    assert_eq!(r.lost, 13);
    assert!(r.recovered_median_ms <= r.recovered_max_ms);
    assert!(r.recovered_max_ms > 0);
}

#[test]
fn a_cluster_too_small_is_refused() {
    let e = baton_sim::scale::run(2, 10).err().expect("refused");
    assert!(e.contains("out of range"), "{e}");
}
