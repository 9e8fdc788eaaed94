//! The anatomy bounds are keyed by NV-Segment-CTMR id: the ids and names must be the
//! real upstream label table's (`configs/metadata.json` channel_def).

use crate::common;

use std::path::PathBuf;

use ctmr_skill::verifier::bounds::AnatomyBounds;

fn metadata() -> serde_json::Value {
    let beside =
        common::repo_root().join("../shared/upstream-data/NV-Segment-CTMR/configs/metadata.json");
    let path = if beside.exists() {
        beside
    } else {
        PathBuf::from("/work/shared/upstream-data/NV-Segment-CTMR/configs/metadata.json")
    };
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

#[test]
fn bounds_ids_and_names_match_the_upstream_label_table() {
    let meta = metadata();
    let channel_def = &meta["network_data_format"]["outputs"]["pred"]["channel_def"];
    assert!(channel_def.is_object(), "metadata.json has no channel_def");
    let bounds = AnatomyBounds::embedded();
    assert_eq!(bounds.ids(), vec![1, 3, 4, 5, 14]);
    for id in bounds.ids() {
        let ours = &bounds.class(id).unwrap().name;
        let upstream = channel_def[id.to_string()]
            .as_str()
            .unwrap_or_else(|| panic!("id {id} not in channel_def"));
        assert_eq!(ours, upstream, "id {id}");
    }
    let rule = &bounds.cross_class.liver_gt_spleen;
    assert_eq!(channel_def[rule.larger_id.to_string()], "liver");
    assert_eq!(channel_def[rule.smaller_id.to_string()], "spleen");
}
