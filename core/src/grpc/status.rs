//! Conversions between `tonic::Status` and `google.rpc.Status` (the tunnel's `Error` message).

use prost::Message;

use crate::proto::google::rpc::Status as RpcStatus;

/// Converts a tonic status to the proto form, keeping details carried in `grpc-status-details-bin`.
pub fn to_proto(status: &tonic::Status) -> RpcStatus {
    if !status.details().is_empty()
        && let Ok(decoded) = RpcStatus::decode(status.details())
    {
        return RpcStatus {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: decoded.details,
        };
    }
    RpcStatus { code: status.code() as i32, message: status.message().to_owned(), details: vec![] }
}

/// Converts a proto status from a peer to a tonic status. Unknown codes become `Unknown`.
pub fn from_proto(status: &RpcStatus) -> tonic::Status {
    let code = tonic::Code::from_i32(status.code);
    if status.details.is_empty() {
        tonic::Status::new(code, status.message.clone())
    } else {
        tonic::Status::with_details(code, status.message.clone(), status.encode_to_vec().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_survive_the_round_trip() {
        let any = prost_types::Any { type_url: "type.googleapis.com/x".into(), value: vec![1, 2, 3] };
        let p = RpcStatus { code: 9, message: "nope".into(), details: vec![any.clone()] };
        let s = from_proto(&p);
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
        let back = to_proto(&s);
        assert_eq!(back, p);
        assert_eq!(
            from_proto(&RpcStatus { code: 99, message: String::new(), details: vec![] }).code(),
            tonic::Code::Unknown
        );
    }
}
