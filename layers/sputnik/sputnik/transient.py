"""Which AWS failures are transient (throttling, a busy or failing service): worth a retry, not a bug."""

from botocore.exceptions import ClientError
from pynamodb.exceptions import PynamoDBException, TransactWriteError

TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "ServiceUnavailable",
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "TransactionConflict",
        "TransactionInProgressException",
        "ThrottlingError",
    }
)


def is_transient(exc: BaseException) -> bool:
    """Whether an AWS error (boto3 or PynamoDB) means "try again later" rather than a bad request."""
    if isinstance(exc, TransactWriteError):
        reasons = {r.code for r in exc.cancellation_reasons if r is not None}
        if reasons & TRANSIENT_CODES:
            return True
    if isinstance(exc, PynamoDBException):
        return exc.cause_response_code in TRANSIENT_CODES
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code")) in TRANSIENT_CODES
    return False
