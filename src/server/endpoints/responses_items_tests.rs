//! The listing of a kept response's input items: ids made once and the
//! same on every read, string content as a text part, and paging by
//! `after`, `limit` and `order` as the API pages.

use super::*;

fn conversation() -> Vec<Value> {
    vec![
        json!({"role": "user", "content": "My name is Ada."}),
        json!({"type": "message", "role": "assistant", "id": "msg_up_1",
               "content": [{"type": "output_text", "text": "Hello Ada."}]}),
        json!({"role": "assistant", "content": "Said before."}),
        json!({"type": "function_call_output", "call_id": "c1", "output": "42"}),
        json!({"role": "user", "content": [{"type": "input_text", "text": "And?"}]}),
    ]
}

fn ids(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect()
}

#[test]
fn items_get_types_ids_and_text_parts() {
    let items = numbered(conversation(), "resp_1");
    assert_eq!(
        items,
        numbered(conversation(), "resp_1"),
        "same ids on every read"
    );
    assert_eq!(
        items[0],
        json!({"type": "message", "role": "user", "id": "msg_0_resp_1",
               "content": [{"type": "input_text", "text": "My name is Ada."}]})
    );
    assert_eq!(items[1]["id"], "msg_up_1", "an item's own id is kept");
    assert_eq!(items[2]["content"][0]["type"], "output_text");
    assert_eq!(items[3]["id"], "item_3_resp_1");
    assert_eq!(items[3]["output"], "42");
    assert_eq!(items[4]["content"][0]["text"], "And?");
}

#[test]
fn pages_follow_order_after_and_limit() {
    let items = numbered(conversation(), "r");
    let l = |q: &'static str| Listing::from_query(Some(q)).unwrap();
    // The default: newest first, 20 at most.
    let page = Listing::default().page(&items).unwrap();
    assert_eq!(ids(&page)[0], "msg_4_r");
    assert_eq!(page["has_more"], false);
    assert_eq!(page["object"], "list");
    let page = l("order=asc&limit=2").page(&items).unwrap();
    assert_eq!(ids(&page), ["msg_0_r", "msg_up_1"]);
    assert_eq!(page["first_id"], "msg_0_r");
    assert_eq!(page["last_id"], "msg_up_1");
    assert_eq!(page["has_more"], true);
    let page = l("order=asc&limit=2&after=msg_up_1").page(&items).unwrap();
    assert_eq!(ids(&page), ["msg_2_r", "item_3_r"]);
    assert_eq!(page["has_more"], true);
    let page = l("order=asc&limit=2&after=item_3_r").page(&items).unwrap();
    assert_eq!(ids(&page), ["msg_4_r"]);
    assert_eq!(page["has_more"], false);
    let page = l("after=msg_2_r").page(&items).unwrap();
    assert_eq!(ids(&page), ["msg_up_1", "msg_0_r"]);
    let page = l("after=msg_0_r").page(&items).unwrap();
    assert_eq!(page["data"], json!([]));
    assert_eq!(page["first_id"], Value::Null);
    let err = l("after=nope").page(&items).unwrap_err();
    assert!(err.message.contains("'nope'"), "{}", err.message);
}

#[test]
fn bad_parameters_are_refused_by_name_and_good_ones_forwarded_alone() {
    for (q, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("order=up", "order"),
        ("after=a/../b", "after"),
        ("after=", "after"),
        ("include=a%26b", "include"),
    ] {
        let err = Listing::from_query(Some(q)).unwrap_err();
        assert_eq!(err.param.as_deref(), Some(param), "{q}");
    }
    let l = Listing::from_query(Some(
        "model=r&limit=5&order=asc&after=msg_1&include[]=message.input_image.image_url&x=1",
    ))
    .unwrap();
    assert_eq!(
        l.forwarded(),
        "?after=msg_1&limit=5&order=asc&include[]=message.input_image.image_url"
    );
    assert_eq!(
        Listing::from_query(Some("model=r")).unwrap().forwarded(),
        ""
    );
}
