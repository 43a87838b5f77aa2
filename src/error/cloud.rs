//! An EC2 API call that failed, as one sentence with what to check: the one error the cloud
//! layer returns (a program [`Error`](super::Error) ends the command with exit 3).

use std::fmt;

/// Add a hint to an AWS error code: what the operator should check.
fn hint(code: &str) -> Option<&'static str> {
    let c = code;
    Some(if c.starts_with("InvalidAMIID") {
        "check ec2.ami: AMI IDs differ from region to region"
    } else if c == "AuthFailure"
        || c.starts_with("InvalidClientTokenId")
        || c == "SignatureDoesNotMatch"
    {
        "check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE) and the region"
    } else if c == "UnauthorizedOperation" || c == "AccessDenied" || c.ends_with("AccessDenied") {
        "the credentials lack an EC2 permission this needs"
    } else if c.contains("LimitExceeded") || c == "InsufficientInstanceCapacity" {
        "an EC2 quota or capacity limit: ask for more, or use another instance type or region"
    } else if c.starts_with("InvalidSubnetID") {
        "check ec2.subnet: it must exist in this region"
    } else if c == "InvalidParameterValue" || c == "InvalidParameterCombination" {
        "check the values of [env.<name>.ec2]"
    } else if c == "OptInRequired" || c == "UnsupportedOperation" || c == "Unsupported" {
        "this region or instance type is not available to the account"
    } else if c == "DependencyViolation" {
        "something else still uses it (an instance, a network interface)"
    } else {
        return None;
    })
}

/// A hint for a failure without an AWS error code (AWS was not reached, or not asked).
fn hint_for_message(m: &str) -> Option<&'static str> {
    let m = m.to_ascii_lowercase();
    Some(if m.contains("credentials") {
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
    } else if m.contains("connect")
        || m.contains("dns")
        || m.contains("timed out")
        || m.contains("timeout")
    {
        "cannot reach the EC2 endpoint: check the network, the region and ec2.endpoint_url / AWS_ENDPOINT_URL"
    } else {
        return None;
    })
}

/// An AWS call that failed, as one sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudError {
    /// The API operation, e.g. `RunInstances`.
    pub op: String,
    /// The AWS error code (`InvalidAMIID.NotFound`), when AWS answered.
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EC2 {} failed: ", self.op)?;
        match &self.code {
            Some(code) => {
                write!(f, "{code}: {}", self.message)?;
                if let Some(h) = hint(code) {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            None => {
                write!(f, "{}", self.message)?;
                if let Some(h) = hint_for_message(&self.message) {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CloudError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_the_code_and_a_hint() {
        let e = CloudError {
            op: "RunInstances".into(),
            code: Some("InvalidAMIID.NotFound".into()),
            message: "The image id '[ami-x]' does not exist".into(),
        };
        assert_eq!(
            e.to_string(),
            "EC2 RunInstances failed: InvalidAMIID.NotFound: The image id '[ami-x]' does not exist (check ec2.ami: AMI IDs differ from region to region)"
        );
    }
}
