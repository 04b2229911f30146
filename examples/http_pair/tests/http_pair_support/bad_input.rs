//! The bad-input test of `tests/http_pair.rs`: every malformed request gets the wire table's
//! Matrix error body, and neither shim process falls over.

use ruma_common::{OwnedRoomId, RoomOrAliasId};
use serde_json::Value;

use crate::{ALICE_DEVICE, Pair, alice, client, create_room, ensure, id, transport};
use http_pair::api::Api;

/// R12, R29, R33, R36 and the wire error table: malformed bodies, wrong methods, bad peek ids, a
/// missing `ver`, oversized bodies. Every answer is a Matrix error body; both shims survive.
pub async fn bad_input(pair: &mut Pair) -> Result<(), String> {
    let (room, _) = create_room(&pair.api2, "bad-input", true).await?;
    let alice = alice(pair);
    let user = [(client::USER_HEADER, alice.as_str()), (client::DEVICE_HEADER, ALICE_DEVICE)];
    let hs1_addr = pair.hs1.addr.clone();
    let origin = [(transport::ORIGIN_HEADER, hs1_addr.as_str())];
    let v3 = matrix_peek::wire::ClientPrefix::V3;
    let client_peek = v3.peek_path((&*room).into());
    let unpeek = v3.unpeek_path(&room);
    let fed = matrix_peek::wire::FederationPrefix::Stable;
    let peek = fed.peek_path(&room, "abc");
    let too_big = vec![b' '; matrix_peek::wire::MAX_REQUEST_BODY_BYTES + 1];
    let long_id = fed.peek_path(&room, &"a".repeat(256));
    let unknown_room: OwnedRoomId = id(&Value::from(format!("!nope:{}", pair.hs2.addr)))?;

    type Case<'a> =
        (&'a str, &'a Api, &'a str, String, &'a [(&'a str, &'a str)], Vec<u8>, u16, &'a str);
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        ("client: malformed JSON", &pair.api1, "POST", client_peek.clone(), &user, b"{not json".to_vec(), 400, "M_NOT_JSON"),
        ("client: body not an object", &pair.api1, "POST", client_peek.clone(), &user, b"[]".to_vec(), 400, "M_BAD_JSON"),
        ("client: servers not a list", &pair.api1, "POST", client_peek.clone(), &user, br#"{"servers":"x"}"#.to_vec(), 400, "M_BAD_JSON"),
        ("client: oversized body", &pair.api1, "POST", client_peek.clone(), &user, too_big.clone(), 413, "M_TOO_LARGE"),
        ("client: not a room id or alias", &pair.api1, "POST", "/_matrix/client/v3/peek/not-a-room".into(), &user, b"{}".to_vec(), 400, "M_INVALID_PARAM"),
        ("client: unknown local alias", &pair.api1, "POST", v3.peek_path(<&RoomOrAliasId>::try_from(format!("#nope:{hs1_addr}").as_str()).map_err(|e| e.to_string())?), &user, b"{}".to_vec(), 404, "M_NOT_FOUND"),
        ("client: no user", &pair.api1, "POST", client_peek.clone(), &[], b"{}".to_vec(), 401, "M_MISSING_TOKEN"),
        ("client: wrong method", &pair.api1, "GET", client_peek.clone(), &user, Vec::new(), 405, "M_UNRECOGNIZED"),
        ("client: unpeek without a peek (R13)", &pair.api1, "POST", unpeek.clone(), &user, b"{}".to_vec(), 400, "M_BAD_STATE"),
        ("client: unpeek body not an object (R12)", &pair.api1, "POST", unpeek.clone(), &user, b"null".to_vec(), 400, "M_BAD_JSON"),
        ("client: unpeek wrong method", &pair.api1, "PUT", unpeek.clone(), &user, b"{}".to_vec(), 405, "M_UNRECOGNIZED"),
        ("federation: missing ver means v1 (R33)", &pair.api2, "PUT", peek.clone(), &origin, b"{}".to_vec(), 400, "M_INCOMPATIBLE_ROOM_VERSION"),
        ("federation: invalid ver", &pair.api2, "PUT", format!("{peek}?ver=%20"), &origin, b"{}".to_vec(), 400, "M_INVALID_PARAM"),
        ("federation: malformed JSON", &pair.api2, "PUT", format!("{peek}?ver=10"), &origin, b"{".to_vec(), 400, "M_NOT_JSON"),
        ("federation: body not an object (R36)", &pair.api2, "PUT", format!("{peek}?ver=10"), &origin, b"\"{}\"".to_vec(), 400, "M_BAD_JSON"),
        ("federation: oversized body", &pair.api2, "PUT", format!("{peek}?ver=10"), &origin, too_big.clone(), 413, "M_TOO_LARGE"),
        ("federation: peek id over 255 bytes (R29)", &pair.api2, "PUT", format!("{long_id}?ver=10"), &origin, b"{}".to_vec(), 400, "M_UNRECOGNIZED"),
        ("federation: peek id with a space (R29)", &pair.api2, "PUT", format!("{}?ver=10", fed.peek_path(&room, "a b")), &origin, b"{}".to_vec(), 400, "M_UNRECOGNIZED"),
        ("federation: unknown room (R31)", &pair.api2, "PUT", format!("{}?ver=10", fed.peek_path(&unknown_room, "abc")), &origin, b"{}".to_vec(), 404, "M_NOT_FOUND"),
        ("federation: wrong method", &pair.api2, "PATCH", peek.clone(), &origin, b"{}".to_vec(), 405, "M_UNRECOGNIZED"),
        ("federation: GET is not a method here", &pair.api2, "GET", peek.clone(), &origin, Vec::new(), 405, "M_UNRECOGNIZED"),
        ("federation: PUT on the renew path", &pair.api2, "PUT", fed.renew_path(&room, "abc"), &origin, b"{}".to_vec(), 405, "M_UNRECOGNIZED"),
        ("federation: renew unknown peek (R41)", &pair.api2, "POST", fed.renew_path(&room, "abc"), &origin, b"{}".to_vec(), 404, "M_NOT_FOUND"),
        ("federation: delete unknown peek (R42)", &pair.api2, "DELETE", peek.clone(), &origin, Vec::new(), 404, "M_NOT_FOUND"),
        ("federation: extra path segment", &pair.api2, "PUT", format!("{peek}/extra"), &origin, b"{}".to_vec(), 404, "M_UNRECOGNIZED"),
        ("federation: no origin", &pair.api2, "PUT", format!("{peek}?ver=10"), &[], b"{}".to_vec(), 401, "M_UNAUTHORIZED"),
        ("send: malformed JSON", &pair.api1, "PUT", "/_matrix/federation/v1/send/t1".into(), &origin, b"{\"pdus\":[".to_vec(), 400, "M_NOT_JSON"),
        ("send: expired_peeks not a list", &pair.api1, "PUT", "/_matrix/federation/v1/send/t2".into(), &origin, br#"{"expired_peeks":{}}"#.to_vec(), 400, "M_BAD_JSON"),
        ("send: wrong method", &pair.api1, "POST", "/_matrix/federation/v1/send/t3".into(), &origin, b"{}".to_vec(), 405, "M_UNRECOGNIZED"),
        ("unknown endpoint", &pair.api1, "GET", "/_matrix/client/v3/nothing".into(), &[], Vec::new(), 404, "M_UNRECOGNIZED"),
    ];
    let mut wrong = Vec::new();
    for (what, api, method, path, headers, body, status, errcode) in cases {
        let (got, reply) = api.raw(method, &path, headers, body).await?;
        let is_matrix = reply["errcode"] == errcode && reply["error"].is_string();
        if got != status || !is_matrix {
            wrong.push(format!(
                "{what}: {method} {path} -> {got} {reply}, wanted {status} {errcode}"
            ));
        }
    }
    // The incompatible-version answer names the room's version (R33).
    let (_, reply) = pair.api2.raw("PUT", &peek, &origin, b"{}".to_vec()).await?;
    ensure(reply["room_version"] == "10", format!("room_version in {reply}"))?;
    // A good request still works afterwards, and both processes are alive.
    let (status, reply) =
        pair.api2.raw("PUT", &format!("{peek}?ver=10"), &origin, b"{}".to_vec()).await?;
    ensure(
        status == 200 && reply["renewal_interval"].is_u64(),
        format!("a good PUT after all that: {reply}"),
    )?;
    let (status, _) = pair.api2.raw("DELETE", &peek, &origin, Vec::new()).await?;
    ensure(status == 200, "and its DELETE")?;
    ensure(pair.hs1.alive() && pair.hs2.alive(), "both shims are still running")?;
    ensure(wrong.is_empty(), wrong.join("\n"))
}
