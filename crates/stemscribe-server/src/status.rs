//! The invoke API's status codes, each with its HTTP status and text.

/// One row of the API's status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 200 · 20000000 · OK.
    Ok,
    /// 400 · 40000000 · ClientError: other client error.
    ClientError,
    /// 400 · 40000010 · InvalidData:NoOutput: no singing melody found.
    NoOutput,
    /// 400 · 40000011 · EmptyData: neither data nor url.
    EmptyData,
    /// 400 · 40000012 · IllegalData: audio cannot be decoded.
    IllegalData,
    /// 400 · 40000013 · ExceededDuration: longer than 10 minutes.
    ExceededDuration,
    /// 400 · 40000016 · ExceededDataSize: larger than 100 MB.
    ExceededDataSize,
    /// 400 · 40000020 · InvalidPayload: a payload value is invalid.
    InvalidPayload,
    /// 400 · 40000021 · EmptyPayload: payload required but empty.
    EmptyPayload,
    /// 400 · 40000022 · IllegalPayload: payload is not JSON or has wrong types.
    IllegalPayload,
    /// 400 · 40000023 · EmptyURL: url expected but empty.
    EmptyUrl,
    /// 400 · 40000024 · FailedDownload: url could not be fetched (or fetching is disabled).
    FailedDownload,
    /// 401 · 40200001 · InvalidAccess: missing credentials.
    InvalidAccess,
    /// 401 · 40200002 · DeniedAccess: wrong appkey or token.
    DeniedAccess,
    /// 400 · 40200003 · InvalidMethod.
    InvalidMethod,
    /// 400 · 40200014 · DeniedNamespace: unknown namespace.
    DeniedNamespace,
    /// 429 · 40200011 · ExceededQPSQuota: too many requests in flight.
    ExceededQuota,
    /// 500 · 50000000 · ServerError: internal error.
    ServerError,
    /// 404 · 40000000 · ClientError: no such route.
    NotFound,
    /// 414 · 40000000 · ClientError: the request target is too long.
    UriTooLong,
    /// 431 · 40000000 · ClientError: too many or too large header lines.
    HeadersTooLarge,
}

impl Status {
    /// The HTTP status code.
    pub fn http(self) -> u16 {
        match self {
            Self::Ok => 200,
            Self::InvalidAccess | Self::DeniedAccess => 401,
            Self::ExceededQuota => 429,
            Self::ServerError => 500,
            Self::NotFound => 404,
            Self::UriTooLong => 414,
            Self::HeadersTooLarge => 431,
            _ => 400,
        }
    }

    /// The API's `status_code`.
    pub fn code(self) -> u32 {
        match self {
            Self::Ok => 20_000_000,
            Self::ClientError | Self::NotFound | Self::UriTooLong | Self::HeadersTooLarge => {
                40_000_000
            }
            Self::NoOutput => 40_000_010,
            Self::EmptyData => 40_000_011,
            Self::IllegalData => 40_000_012,
            Self::ExceededDuration => 40_000_013,
            Self::ExceededDataSize => 40_000_016,
            Self::InvalidPayload => 40_000_020,
            Self::EmptyPayload => 40_000_021,
            Self::IllegalPayload => 40_000_022,
            Self::EmptyUrl => 40_000_023,
            Self::FailedDownload => 40_000_024,
            Self::InvalidAccess => 40_200_001,
            Self::DeniedAccess => 40_200_002,
            Self::InvalidMethod => 40_200_003,
            Self::DeniedNamespace => 40_200_014,
            Self::ExceededQuota => 40_200_011,
            Self::ServerError => 50_000_000,
        }
    }

    /// The API's `status_text`.
    pub fn text(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::ClientError | Self::NotFound | Self::UriTooLong | Self::HeadersTooLarge => {
                "ClientError"
            }
            Self::NoOutput => "InvalidData:NoOutput",
            Self::EmptyData => "EmptyData",
            Self::IllegalData => "IllegalData",
            Self::ExceededDuration => "ExceededDuration",
            Self::ExceededDataSize => "ExceededDataSize",
            Self::InvalidPayload => "InvalidPayload",
            Self::EmptyPayload => "EmptyPayload",
            Self::IllegalPayload => "IllegalPayload",
            Self::EmptyUrl => "EmptyURL",
            Self::FailedDownload => "FailedDownload",
            Self::InvalidAccess => "InvalidAccess",
            Self::DeniedAccess => "DeniedAccess",
            Self::InvalidMethod => "InvalidMethod",
            Self::DeniedNamespace => "DeniedNamespace",
            Self::ExceededQuota => "ExceededQPSQuota",
            Self::ServerError => "ServerError",
        }
    }
}
