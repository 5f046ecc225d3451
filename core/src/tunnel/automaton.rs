//! Message-order automata of the tunnel protocols.
//!
//! Upstream expresses these with the custom proto options `first_allowed_field` (92001) and
//! `next_allowed_field` (92000), -1 meaning end of stream; the grpctool stream visitor rejects any
//! other order with `InvalidArgument`. kasim keeps the same tables in code.

/// End of stream, as upstream spells it in the automata options.
pub const EOF: i32 = -1;

/// One message-order specification: oneof field numbers allowed first and after each field.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    first: &'static [i32],
    next: &'static [(i32, &'static [i32])],
}

/// `ConnectRequest` (agentk → kas): descriptor, then header/message*/trailer/error? or error.
pub const CONNECT_REQUEST: Spec = Spec {
    name: "ConnectRequest",
    first: &[1],
    next: &[(1, &[2, 5]), (2, &[3, 4]), (3, &[3, 4]), (4, &[5, EOF]), (5, &[EOF])],
};

/// `ConnectResponse` (kas → agentk): EOF first means the tunnel was never used.
pub const CONNECT_RESPONSE: Spec =
    Spec { name: "ConnectResponse", first: &[1, EOF], next: &[(1, &[2, 3, EOF]), (2, &[2, 3, EOF]), (3, &[EOF])] };

/// `grpctool.HttpRequest`: header, data*, trailer, upgrade_data*.
pub const HTTP_REQUEST: Spec =
    Spec { name: "HttpRequest", first: &[1], next: &[(1, &[2, 3]), (2, &[2, 3]), (3, &[4, EOF]), (4, &[4, EOF])] };

/// `grpctool.HttpResponse`: same shape as the request.
pub const HTTP_RESPONSE: Spec = Spec { name: "HttpResponse", ..HTTP_REQUEST };

/// `kas.GatewayKasResponse` (gateway kas → routing kas): an optional no_tunnel while the gateway
/// waits, tunnel_ready, then the forwarded call exactly like `ConnectRequest` after its descriptor.
pub const GATEWAY_KAS_RESPONSE: Spec = Spec {
    name: "GatewayKasResponse",
    first: &[1, 6],
    next: &[(6, &[1]), (1, &[2, 5]), (2, &[3, 4]), (3, &[3, 4]), (4, &[5, EOF]), (5, &[EOF])],
};

/// A message arrived out of order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{spec}: {got} not allowed {after}; expected one of {expected:?}")]
pub struct OrderError {
    pub spec: &'static str,
    pub got: String,
    pub after: String,
    pub expected: Vec<i32>,
}

impl From<OrderError> for tonic::Status {
    fn from(e: OrderError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Tracks one stream direction against a [`Spec`].
#[derive(Debug)]
pub struct Checker {
    spec: &'static Spec,
    last: Option<i32>,
}

fn describe(field: i32) -> String {
    if field == EOF { "end of stream".to_owned() } else { format!("field {field}") }
}

impl Checker {
    pub fn new(spec: &'static Spec) -> Self {
        Self { spec, last: None }
    }

    fn allowed(&self) -> &'static [i32] {
        match self.last {
            None => self.spec.first,
            Some(l) => self.spec.next.iter().find(|(f, _)| *f == l).map(|(_, n)| *n).unwrap_or(&[]),
        }
    }

    /// Accepts the next field number (or [`EOF`]); an error leaves the checker unchanged.
    pub fn accept(&mut self, field: i32) -> Result<(), OrderError> {
        let allowed = self.allowed();
        if allowed.contains(&field) {
            self.last = Some(field);
            Ok(())
        } else {
            Err(OrderError {
                spec: self.spec.name,
                got: describe(field),
                after: self.last.map_or_else(|| "at start".to_owned(), |l| format!("after {}", describe(l))),
                expected: allowed.to_vec(),
            })
        }
    }

    /// The oneof field a message carried, or an error when the oneof was empty.
    pub fn accept_msg(&mut self, field: Option<i32>) -> Result<(), OrderError> {
        match field {
            Some(f) => self.accept(f),
            None => Err(OrderError {
                spec: self.spec.name,
                got: "a message with no oneof field set".to_owned(),
                after: self.last.map_or_else(|| "at start".to_owned(), |l| format!("after {}", describe(l))),
                expected: self.allowed().to_vec(),
            }),
        }
    }

    pub fn last(&self) -> Option<i32> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field numbers each spec uses, plus EOF and one number no spec uses.
    fn alphabet(spec: &Spec) -> Vec<i32> {
        let mut a: Vec<i32> = spec.next.iter().map(|(f, _)| *f).collect();
        a.extend([EOF, 99]);
        a
    }

    /// The legal (state, next) pairs, written out independently of the tables above.
    fn legal(spec: &Spec) -> Vec<(Option<i32>, i32)> {
        let p = |s: Option<i32>, n: &[i32]| n.iter().map(move |x| (s, *x)).collect::<Vec<_>>();
        match spec.name {
            "ConnectRequest" => [
                p(None, &[1]),
                p(Some(1), &[2, 5]),
                p(Some(2), &[3, 4]),
                p(Some(3), &[3, 4]),
                p(Some(4), &[5, -1]),
                p(Some(5), &[-1]),
            ]
            .concat(),
            "ConnectResponse" => {
                [p(None, &[1, -1]), p(Some(1), &[2, 3, -1]), p(Some(2), &[2, 3, -1]), p(Some(3), &[-1])].concat()
            }
            "HttpRequest" | "HttpResponse" => {
                [p(None, &[1]), p(Some(1), &[2, 3]), p(Some(2), &[2, 3]), p(Some(3), &[4, -1]), p(Some(4), &[4, -1])]
                    .concat()
            }
            "GatewayKasResponse" => [
                p(None, &[1, 6]),
                p(Some(6), &[1]),
                p(Some(1), &[2, 5]),
                p(Some(2), &[3, 4]),
                p(Some(3), &[3, 4]),
                p(Some(4), &[5, -1]),
                p(Some(5), &[-1]),
            ]
            .concat(),
            other => panic!("no table for {other}"),
        }
    }

    /// Every (state, next) pair: legal ones accepted, every other one rejected.
    #[test]
    fn every_transition_is_checked() {
        for spec in [&CONNECT_REQUEST, &CONNECT_RESPONSE, &HTTP_REQUEST, &HTTP_RESPONSE, &GATEWAY_KAS_RESPONSE] {
            let legal = legal(spec);
            let mut states: Vec<Option<i32>> = vec![None];
            states.extend(spec.next.iter().map(|(f, _)| Some(*f)));
            let mut rejected = 0;
            for state in &states {
                for next in alphabet(spec) {
                    let mut c = Checker { spec, last: *state };
                    let ok = c.accept(next).is_ok();
                    assert_eq!(ok, legal.contains(&(*state, next)), "{}: {state:?} -> {next}", spec.name);
                    if !ok {
                        rejected += 1;
                        assert_eq!(c.last, *state, "a rejected message must not move the automaton");
                    }
                }
            }
            assert!(rejected > 0);
        }
    }

    #[test]
    fn a_full_forwarded_call_is_accepted_and_errors_read_well() {
        let mut c = Checker::new(&CONNECT_REQUEST);
        for f in [1, 2, 3, 3, 4, 5, EOF] {
            c.accept(f).unwrap();
        }
        let mut c = Checker::new(&CONNECT_REQUEST);
        let err = c.accept(2).unwrap_err();
        assert_eq!(err.to_string(), "ConnectRequest: field 2 not allowed at start; expected one of [1]");
        assert_eq!(tonic::Status::from(err).code(), tonic::Code::InvalidArgument);
        let err = c.accept_msg(None).unwrap_err();
        assert!(err.to_string().contains("no oneof field set"));
    }
}
