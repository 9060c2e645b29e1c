//! HTTP/3 over tarte's in-memory pipe: requests, bodies, trailers, many
//! streams, GOAWAY, the QPACK dynamic table both ways.

use tarte_h3::testing::{header, request, response, Session};
use tarte_h3::{Error, Event, Header, NameValue};

fn headers_of(ev: &[(u64, Event)], id: u64) -> Vec<Header> {
    ev.iter()
        .find_map(|(s, e)| match e {
            Event::Headers { list, .. } if *s == id => Some(list.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no headers for stream {id} in {ev:?}"))
}

#[test]
fn get_with_body() {
    let mut s = Session::new().unwrap();
    let id = s.send_request(&request("GET", "/hello"), true).unwrap();
    assert_eq!(id, 0);
    let ev = s.server_events(50).unwrap();
    assert!(
        ev.iter().any(|(i, e)| *i == id
            && matches!(
                e,
                Event::Headers {
                    more_frames: false,
                    ..
                }
            )),
        "{ev:?}"
    );
    assert!(ev.contains(&(id, Event::Finished)), "{ev:?}");
    let h = headers_of(&ev, id);
    assert_eq!(header(&h, ":path"), Some(&b"/hello"[..]));
    assert_eq!(header(&h, ":method"), Some(&b"GET"[..]));
    s.send_response(id, &response(200), false).unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    s.send_all(false, id, &body, 1000).unwrap();
    let ev = s.client_events(5).unwrap();
    let h = headers_of(&ev, id);
    assert_eq!(header(&h, ":status"), Some(&b"200"[..]));
    let (got, trailers) = s.recv_all(true, id, 1000).unwrap();
    assert_eq!(got, body);
    assert!(trailers.is_none());
}
