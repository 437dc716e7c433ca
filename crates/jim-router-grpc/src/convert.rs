//! Between the wire types of `jim.router.v1` and the routing contract's.

use std::sync::Arc;

use jim_model::{MessageId, MessageKind};
use jim_protocol::Command;
use jim_router::{
    Addressees, ClientAck, Delivery, Outgoing, RouterError, Sender, SessionId, SessionInfo, Target,
    Transport, UserList,
};
use tonic::Status;

use crate::proto;
use crate::proto::route_error::Code;

pub(crate) fn session_to_proto(info: &SessionInfo) -> proto::Session {
    proto::Session {
        id: info.id.0,
        user: info.user.to_string(),
        device: info.device.as_deref().map(str::to_owned),
        transport: match info.transport {
            Transport::Tcp => proto::Transport::Tcp,
            Transport::WebSocket => proto::Transport::Websocket,
        } as i32,
        node: u32::from(info.node),
        since_ms: info.since_ms,
    }
}

pub(crate) fn session_from_proto(session: proto::Session) -> Result<SessionInfo, Status> {
    if session.user.is_empty() {
        return Err(Status::invalid_argument("session.user must not be empty"));
    }
    let transport = match proto::Transport::try_from(session.transport) {
        Ok(proto::Transport::Websocket) => Transport::WebSocket,
        _ => Transport::Tcp,
    };
    Ok(SessionInfo {
        id: SessionId(session.id),
        user: session.user.into(),
        device: session.device.map(Into::into),
        transport,
        node: u16::try_from(session.node)
            .map_err(|_| Status::invalid_argument("session.node is out of range"))?,
        since_ms: session.since_ms,
    })
}

pub(crate) fn message_to_proto(message: &Outgoing) -> proto::Message {
    proto::Message {
        cmd: message.cmd.to_string(),
        kind: message.kind.as_str().to_owned(),
        target: Some(proto::Target {
            to: Some(match &message.target {
                Target::User(user) => proto::target::To::User(user.to_string()),
                Target::Group(group) => proto::target::To::Group(group.to_string()),
                Target::Everyone => proto::target::To::Everyone(true),
            }),
        }),
        sender: message.sender.as_ref().map(|s| proto::Sender {
            user: s.user.to_string(),
            session: s.session.0,
        }),
        message_id: message.message_id.0,
        body: message.body.clone(),
        client_msg_id: message.client_msg_id.as_deref().map(str::to_owned),
    }
}

/// A routed message from the wire, checked as a gateway would have.
pub(crate) fn message_from_proto(message: proto::Message) -> Result<Outgoing, Status> {
    let cmd = command(&message.cmd)?;
    let kind = match (cmd, message.kind.as_str()) {
        (Command::Typing, "typing") => MessageKind::Typing,
        (_, kind) => MessageKind::parse(kind)
            .ok_or_else(|| Status::invalid_argument(format!("unknown message kind {kind:?}")))?,
    };
    let target = match message.target.and_then(|t| t.to) {
        Some(proto::target::To::User(user)) if !user.is_empty() => Target::User(user.into()),
        Some(proto::target::To::Group(group)) if !group.is_empty() => Target::Group(group.into()),
        Some(proto::target::To::Everyone(true)) => Target::Everyone,
        _ => {
            return Err(Status::invalid_argument(
                "message.target must name a user, a group, or everyone",
            ));
        }
    };
    Ok(Outgoing {
        cmd,
        kind,
        target,
        sender: message.sender.map(|s| Sender {
            user: s.user.into(),
            session: SessionId(s.session),
        }),
        message_id: MessageId(message.message_id),
        body: message.body,
        client_msg_id: message.client_msg_id.map(Into::into),
    })
}

/// An inbox read for the wire.
pub(crate) fn read_to_proto(read: jim_router::InboxRead) -> proto::ReadInboxReply {
    proto::ReadInboxReply {
        epoch: read.epoch.to_string(),
        entries: read
            .entries
            .into_iter()
            .map(|e| proto::InboxEntry {
                offset: e.offset,
                cmd: e.cmd.to_string(),
                except_session: e.except,
                at_ms: e.at_ms,
                body: e.body,
            })
            .collect(),
    }
}

/// An inbox read from the wire.
pub(crate) fn read_from_proto(reply: proto::ReadInboxReply) -> Result<jim_router::InboxRead, Status> {
    let entries = reply
        .entries
        .into_iter()
        .map(|e| {
            Ok(jim_router::inbox::Entry {
                offset: e.offset,
                cmd: command(&e.cmd)?,
                except: e.except_session,
                at_ms: e.at_ms,
                body: e.body,
            })
        })
        .collect::<Result<_, Status>>()?;
    Ok(jim_router::InboxRead {
        epoch: reply.epoch.into(),
        entries,
    })
}

pub(crate) fn command(code: &str) -> Result<Command, Status> {
    match <[u8; 4]>::try_from(code.as_bytes()).map(Command::from_code) {
        Ok(cmd @ (Command::C2C | Command::C2G | Command::S2C | Command::Typing)) => Ok(cmd),
        _ => Err(Status::invalid_argument(format!(
            "cmd {code:?} is not B101, B102, B103 or B104"
        ))),
    }
}

pub(crate) fn ack_to_proto(ack: &ClientAck) -> proto::ClientAck {
    proto::ClientAck {
        user: ack.user.to_string(),
        session: ack.session.0,
        message_id: ack.message_id.0,
        body: ack.body.clone(),
    }
}

pub(crate) fn ack_from_proto(ack: proto::ClientAck) -> ClientAck {
    ClientAck {
        user: ack.user.into(),
        session: SessionId(ack.session),
        message_id: MessageId(ack.message_id),
        body: ack.body,
    }
}

pub(crate) fn route_error_to_proto(error: &RouterError) -> proto::RouteError {
    let code = match error {
        RouterError::NotMember { .. } => Code::NotMember,
        RouterError::UnknownGroup { .. } => Code::UnknownGroup,
        RouterError::Rejected { .. } => Code::Rejected,
        RouterError::Invalid { .. } => Code::Invalid,
        _ => Code::Unavailable,
    };
    // The reason travels without the variant's prefix; it is rebuilt below.
    let reason = match error {
        RouterError::NotMember { group } | RouterError::UnknownGroup { group } => group.clone(),
        RouterError::Rejected { reason }
        | RouterError::Invalid { reason }
        | RouterError::Unavailable { reason } => reason.clone(),
        other => other.to_string(),
    };
    proto::RouteError {
        code: code as i32,
        reason,
    }
}

pub(crate) fn route_error_from_proto(error: proto::RouteError) -> RouterError {
    let reason = error.reason;
    match Code::try_from(error.code) {
        Ok(Code::NotMember) => RouterError::NotMember { group: reason },
        Ok(Code::UnknownGroup) => RouterError::UnknownGroup { group: reason },
        Ok(Code::Rejected) => RouterError::Rejected { reason },
        Ok(Code::Invalid) => RouterError::Invalid { reason },
        _ => RouterError::Unavailable { reason },
    }
}

/// A router error as a gRPC status (admin RPCs): the code from the
/// router's table ([`jim_router::Refusal`]), and the error itself in the
/// details, so that a gateway gets it back whole.
pub(crate) fn status_of(error: RouterError) -> Status {
    let code = tonic::Code::from_i32(error.refusal().grpc_code());
    let details = prost::Message::encode_to_vec(&route_error_to_proto(&error));
    Status::with_details(code, error.to_string(), details.into())
}

/// A gRPC status as a router error (the gateway's view of admin RPCs):
/// the error in its details when the router put it there; otherwise (a
/// request refused before the router looked, the link failing) by code.
pub(crate) fn error_of(status: &Status) -> RouterError {
    if let Ok(error) = <proto::RouteError as prost::Message>::decode(status.details())
        && error.code != Code::Unspecified as i32
    {
        return route_error_from_proto(error);
    }
    let reason = status.message().to_owned();
    match status.code() {
        tonic::Code::InvalidArgument => RouterError::Invalid { reason },
        _ => RouterError::Unavailable {
            reason: format!("router: {}", status.message()),
        },
    }
}

pub(crate) fn users(users: Vec<String>) -> Result<Vec<jim_router::UserId>, Status> {
    if users.is_empty() || users.iter().any(String::is_empty) {
        return Err(Status::invalid_argument(
            "users must list at least one non-empty user id",
        ));
    }
    Ok(users.into_iter().map(Arc::from).collect())
}

/// A gateway's part of a planned delivery, as the router sends it.
pub(crate) fn delivery_to_proto(delivery: &Delivery<'_>) -> proto::Delivery {
    let (users, offsets, except, everyone) = match &delivery.to {
        Addressees::Everyone => (Vec::new(), Vec::new(), None, true),
        Addressees::Users {
            users,
            offsets,
            except,
        } => (
            users.iter().map(|u| u.to_string()).collect(),
            offsets.clone(),
            except.map(|s| s.0),
            false,
        ),
    };
    proto::Delivery {
        cmd: delivery.cmd.to_string(),
        body: delivery.body.clone(),
        users,
        except_session: except,
        everyone,
        offsets,
    }
}

/// A delivery the router sent, to apply to this gateway's hub.
pub(crate) fn delivery_from_proto(delivery: proto::Delivery) -> Result<Delivery<'static>, Status> {
    let cmd = command(&delivery.cmd)?;
    if delivery.everyone {
        return Ok(Delivery::to_everyone(cmd, delivery.body));
    }
    Ok(Delivery::to_users(
        cmd,
        delivery.body,
        UserList::Listed(delivery.users.into_iter().map(Into::into).collect()),
        delivery.offsets,
        delivery.except_session.map(SessionId),
    ))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_planned_delivery_survives_the_wire() {
        let delivery = Delivery::to_users(
            Command::C2G,
            Bytes::from_static(b"{}"),
            UserList::Listed(vec!["a".into(), "b".into()]),
            vec![3, 8],
            Some(SessionId(5)),
        );
        let back = delivery_from_proto(delivery_to_proto(&delivery)).unwrap();
        let Addressees::Users {
            users,
            offsets,
            except,
        } = back.to
        else {
            panic!("to users")
        };
        assert_eq!(users.iter().map(|u| &**u).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((offsets, except), (vec![3, 8], Some(SessionId(5))));
        let everyone = delivery_to_proto(&Delivery::to_everyone(Command::S2C, Bytes::new()));
        assert!(matches!(
            delivery_from_proto(everyone).unwrap().to,
            Addressees::Everyone
        ));
        let bad = proto::Delivery {
            cmd: "B001".into(),
            ..proto::Delivery::default()
        };
        assert!(delivery_from_proto(bad).is_err(), "only messages are delivered");
    }

    #[test]
    fn messages_and_sessions_survive_the_wire() {
        let message = Outgoing {
            cmd: Command::C2G,
            kind: MessageKind::Image,
            target: Target::Group("g".into()),
            sender: Some(Sender {
                user: "u".into(),
                session: SessionId(7),
            }),
            message_id: MessageId(99),
            body: Bytes::from_static(b"{}"),
            client_msg_id: None,
        };
        assert_eq!(message_from_proto(message_to_proto(&message)).unwrap(), message);
        let info = SessionInfo {
            id: SessionId(3),
            user: "u".into(),
            device: Some("ios".into()),
            transport: Transport::WebSocket,
            node: 12,
            since_ms: 5,
        };
        assert_eq!(session_from_proto(session_to_proto(&info)).unwrap(), info);
    }

    #[test]
    fn route_errors_survive_the_wire() {
        for error in [
            RouterError::NotMember { group: "g".into() },
            RouterError::UnknownGroup { group: "g".into() },
            RouterError::Rejected { reason: "no".into() },
            RouterError::Invalid { reason: "bad".into() },
            RouterError::Unavailable {
                reason: "down".into(),
            },
        ] {
            assert_eq!(route_error_from_proto(route_error_to_proto(&error)), error);
        }
    }

    #[test]
    fn bad_wire_messages_are_refused() {
        let mut message = message_to_proto(&Outgoing {
            cmd: Command::C2C,
            kind: MessageKind::Text,
            target: Target::User("u".into()),
            sender: None,
            message_id: MessageId(1),
            body: Bytes::new(),
            client_msg_id: None,
        });
        message.cmd = "B001".into();
        assert_eq!(
            message_from_proto(message.clone()).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        message.cmd = "B101".into();
        message.kind = "gif".into();
        assert!(message_from_proto(message.clone()).is_err());
        message.kind = "text".into();
        message.target = None;
        assert!(message_from_proto(message).is_err());
    }
}
