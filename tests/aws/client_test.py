"""The AWS-compatible endpoint (CONTRACT section 11) driven by the real clients.

Run by tests/aws.rs against a running daemon, with the data it set up:
boto3's route53domains client and the AWS CLI, unmodified, pointed at the
daemon with endpoint_url / --endpoint-url, plus a few raw requests signed by
botocore's own SigV4 signer for what an SDK would never send.

Environment: CV_AWS_ENDPOINT, CV_AWS_ACCESS_KEY_ID, CV_AWS_SECRET_ACCESS_KEY,
CV_AWS_REGION, CV_AWS_FIXTURE (a JSON file: the domains and operations the
Rust side created), CV_AWS_CLI (the aws executable).
"""

import datetime
import hashlib
import json
import os
import subprocess
import unittest
import urllib.error
import urllib.request
import uuid
from unittest import mock

import boto3
import botocore.auth
from botocore import UNSIGNED
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT = os.environ["CV_AWS_ENDPOINT"]
KEY_ID = os.environ["CV_AWS_ACCESS_KEY_ID"]
SECRET = os.environ["CV_AWS_SECRET_ACCESS_KEY"]
REGION = os.environ["CV_AWS_REGION"]
AWS_CLI = os.environ.get("CV_AWS_CLI", "aws")
with open(os.environ["CV_AWS_FIXTURE"]) as f:
    FIXTURE = json.load(f)

PREFIX = "Route53Domains_v20140515."
CONTENT_TYPE = "application/x-amz-json-1.1"


def client(**overrides):
    args = dict(
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )
    args.update(overrides)
    return boto3.client("route53domains", **args)


def error_of(call, *args, **kwargs):
    """The ClientError a call raises (fails the test if it succeeds)."""
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return e
    raise AssertionError(f"{call.__name__} succeeded; expected an error")


def raw(target, body, extra_headers=None, credentials=None, after_signing=None):
    """POST / signed by botocore's SigV4Auth; returns (status, json, headers).

    Headers in extra_headers are signed (SigV4Auth signs every header it is
    given); after_signing may change the headers once the signature is made.
    """
    url = ENDPOINT + "/"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": PREFIX + target}
    headers.update(extra_headers or {})
    headers = {k: v for k, v in headers.items() if v is not None}
    request = AWSRequest(method="POST", url=url, data=data, headers=headers)
    if credentials is not False:
        creds = credentials or Credentials(KEY_ID, SECRET)
        botocore.auth.SigV4Auth(creds, "route53domains", REGION).add_auth(request)
    final = dict(request.headers.items())
    if after_signing:
        after_signing(final)
    http = urllib.request.Request(url, data=data, headers=final, method="POST")
    try:
        with urllib.request.urlopen(http, timeout=30) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


class Fixture:
    pending = FIXTURE["pending_domain"]
    pending_email = FIXTURE["pending_email"]
    validated = FIXTURE["validated_domain"]
    expired = FIXTURE["expired_domain"]
    limited = FIXTURE["limit_domain"]
    resend_limit = FIXTURE["resend_limit"]
    unknown = FIXTURE["unknown_domain"]
    unsupported = FIXTURE["unsupported_domain"]
    operations = {o["OperationId"]: o for o in FIXTURE["operations"]}


def epoch(rfc3339):
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def sort_key(summary):
    return (summary["SubmittedDate"], summary["OperationId"])


class Reachability(unittest.TestCase):
    def test_statuses_of_pending_validated_and_expired_registrants(self):
        c = client()
        for domain, status in [
            (Fixture.pending, "PENDING"),
            (Fixture.validated, "DONE"),
            (Fixture.expired, "EXPIRED"),
        ]:
            r = c.get_contact_reachability_status(domainName=domain)
            meta = r.pop("ResponseMetadata")
            self.assertEqual(r, {"domainName": domain, "status": status})
            self.assertEqual(meta["HTTPStatusCode"], 200)
            headers = meta["HTTPHeaders"]
            self.assertEqual(headers["content-type"], CONTENT_TYPE)
            self.assertTrue(meta["RequestId"])
            self.assertEqual(headers["x-amzn-requestid"], meta["RequestId"])
            self.assertTrue(headers["date"].endswith(" GMT"), headers["date"])

    def test_unknown_unsupported_and_malformed_domains(self):
        c = client()
        with self.assertRaises(c.exceptions.UnsupportedTLD) as e:
            c.get_contact_reachability_status(domainName=Fixture.unsupported)
        self.assertEqual(e.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        with self.assertRaises(c.exceptions.InvalidInput):
            c.get_contact_reachability_status(domainName=Fixture.unknown)
        with self.assertRaises(c.exceptions.InvalidInput):
            c.get_contact_reachability_status(domainName="not a domain")
        with self.assertRaises(c.exceptions.InvalidInput):
            c.resend_contact_reachability_email(domainName=Fixture.unknown)

    def test_domain_name_is_required(self):
        # botocore's model does not mark domainName required: {} is sent.
        c = client()
        e = error_of(c.get_contact_reachability_status)
        self.assertEqual(e.response["Error"]["Code"], "InvalidInput")
        self.assertIn("domainName", e.response["Error"]["Message"])


class Resend(unittest.TestCase):
    def test_resend_to_a_pending_registrant_mails_it(self):
        r = client().resend_contact_reachability_email(domainName=Fixture.pending)
        r.pop("ResponseMetadata")
        self.assertEqual(
            r,
            {
                "domainName": Fixture.pending,
                "emailAddress": Fixture.pending_email,
                "isAlreadyVerified": False,
            },
        )

    def test_resend_to_a_validated_registrant_says_so(self):
        r = client().resend_contact_reachability_email(domainName=Fixture.validated)
        self.assertIs(r["isAlreadyVerified"], True)
        self.assertEqual(r["domainName"], Fixture.validated)

    def test_the_daily_limit_is_operation_limit_exceeded(self):
        c = client()
        for _ in range(Fixture.resend_limit):
            self.assertIs(
                c.resend_contact_reachability_email(domainName=Fixture.limited)[
                    "isAlreadyVerified"
                ],
                False,
            )
        with self.assertRaises(c.exceptions.OperationLimitExceeded) as e:
            c.resend_contact_reachability_email(domainName=Fixture.limited)
        response = e.exception.response
        self.assertEqual(response["ResponseMetadata"]["HTTPStatusCode"], 400)
        # botocore does not retry a 400.
        self.assertEqual(response["ResponseMetadata"]["RetryAttempts"], 0)


class OperationDetail(unittest.TestCase):
    def test_every_operation_as_created(self):
        c = client()
        for op_id, expected in Fixture.operations.items():
            r = c.get_operation_detail(OperationId=op_id)
            r.pop("ResponseMetadata")
            self.assertEqual(r["OperationId"], op_id)
            self.assertEqual(r["Status"], expected["Status"])
            self.assertEqual(r["Type"], expected["Type"])
            self.assertEqual(r["DomainName"], expected["DomainName"])
            self.assertEqual(r["SubmittedDate"].timestamp(), epoch(expected["SubmittedDate"]))
            self.assertEqual(
                r["LastUpdatedDate"].timestamp(), epoch(expected["LastUpdatedDate"])
            )
            # Absent optional members are omitted, not null.
            if expected["StatusFlag"] is None:
                self.assertNotIn("StatusFlag", r)
            else:
                self.assertEqual(r["StatusFlag"], expected["StatusFlag"])
            if expected["Message"] is None:
                self.assertNotIn("Message", r)
            else:
                self.assertEqual(r["Message"], expected["Message"])

    def test_the_fixture_has_each_shape(self):
        statuses = {o["Status"] for o in Fixture.operations.values()}
        self.assertTrue({"SUBMITTED", "SUCCESSFUL", "FAILED"} <= statuses, statuses)
        self.assertTrue(any(o["Message"] for o in Fixture.operations.values()))

    def test_unknown_and_malformed_ids_are_invalid_input(self):
        c = client()
        for bad in [str(uuid.uuid4()), "not-an-id"]:
            with self.assertRaises(c.exceptions.InvalidInput):
                c.get_operation_detail(OperationId=bad)

    def test_operation_id_is_required(self):
        # botocore checks required members itself; a raw request does not.
        status, body, headers = raw("GetOperationDetail", {})
        self.assertEqual(status, 400)
        self.assertEqual(body["__type"], "InvalidInput")
        self.assertIn("OperationId", body["message"])
        self.assertTrue(headers["x-amzn-RequestId"])


class ListOperations(unittest.TestCase):
    def all_pages(self, page_size, **kwargs):
        pages = list(
            client()
            .get_paginator("list_operations")
            .paginate(PaginationConfig={"PageSize": page_size}, **kwargs)
        )
        return pages, [o for p in pages for o in p["Operations"]]

    def test_default_page_is_20_newest_first(self):
        r = client().list_operations()
        self.assertEqual(len(r["Operations"]), 20)
        self.assertIn("NextPageMarker", r)
        dates = [o["SubmittedDate"] for o in r["Operations"]]
        self.assertEqual(dates, sorted(dates, reverse=True))
        for o in r["Operations"]:
            expected = Fixture.operations[o["OperationId"]]
            self.assertEqual(o["Type"], expected["Type"])
            self.assertEqual(o["Status"], expected["Status"])
            self.assertEqual(o["DomainName"], expected["DomainName"])
            self.assertIn("LastUpdatedDate", o)
            self.assertEqual("StatusFlag" in o, expected["StatusFlag"] is not None)
            self.assertEqual("Message" in o, expected["Message"] is not None)

    def test_the_paginator_walks_every_page_once(self):
        total = len(Fixture.operations)
        pages, ops = self.all_pages(7)
        self.assertGreater(len(pages), 1)
        self.assertEqual([len(p["Operations"]) for p in pages][:-1], [7] * (len(pages) - 1))
        self.assertNotIn("NextPageMarker", pages[-1])
        ids = [o["OperationId"] for o in ops]
        self.assertEqual(len(ids), total)
        self.assertEqual(set(ids), set(Fixture.operations))
        # Newest first, ties broken the same way every time.
        keys = [sort_key(o) for o in ops]
        self.assertEqual(keys, sorted(keys, reverse=True))
        _, ascending = self.all_pages(4, SortBy="SubmittedDate", SortOrder="ASC")
        self.assertEqual(ascending, list(reversed(ops)))
        _, whole = self.all_pages(100)
        self.assertEqual([o["OperationId"] for o in whole], ids)

    def test_max_items_with_the_paginator_resumes_with_its_token(self):
        paginator = client().get_paginator("list_operations")
        first = paginator.paginate(PaginationConfig={"MaxItems": 5, "PageSize": 3}).build_full_result()
        self.assertEqual(len(first["Operations"]), 5)
        rest = paginator.paginate(
            PaginationConfig={"PageSize": 3, "StartingToken": first["NextToken"]}
        ).build_full_result()
        ids = [o["OperationId"] for o in first["Operations"] + rest["Operations"]]
        self.assertEqual(sorted(ids), sorted(Fixture.operations))

    def test_filters_by_status_and_type(self):
        _, everything = self.all_pages(100)
        for statuses in (["FAILED"], ["SUCCESSFUL", "FAILED"], ["SUBMITTED"]):
            _, got = self.all_pages(3, Status=statuses)
            expected = [o for o in everything if o["Status"] in statuses]
            self.assertTrue(expected, statuses)
            self.assertEqual(got, expected)
        _, got = self.all_pages(2, Type=["RENEW_DOMAIN", "TRANSFER_IN_DOMAIN"])
        expected = [o for o in everything if o["Type"] in ("RENEW_DOMAIN", "TRANSFER_IN_DOMAIN")]
        self.assertTrue(expected)
        self.assertEqual(got, expected)
        _, none = self.all_pages(5, Status=["ERROR"])
        self.assertEqual(none, [])

    def test_submitted_since_takes_fractional_epoch_seconds(self):
        _, everything = self.all_pages(100)
        since = epoch(FIXTURE["second_batch_submitted"])
        for cutoff in (since, since - 0.5, since + 0.5, since - 0.001):
            _, got = self.all_pages(4, SubmittedSince=cutoff)
            expected = [o for o in everything if o["SubmittedDate"].timestamp() >= cutoff]
            self.assertEqual(got, expected, cutoff)
        _, got = self.all_pages(4, SubmittedSince=since)
        self.assertGreater(len(got), 0)
        self.assertLess(len(got), len(everything))

    def test_bad_members_are_invalid_input(self):
        c = client()
        for kwargs in [
            dict(MaxItems=0),
            dict(MaxItems=101),
            dict(Status=["DONE"]),
            dict(Status=["SUBMITTED", "IN_PROGRESS", "ERROR", "SUCCESSFUL", "FAILED", "FAILED"]),
            dict(Type=["NO_SUCH_TYPE"]),
            dict(SortBy="DomainName"),
            dict(SortOrder="SIDEWAYS"),
        ]:
            with self.assertRaises(c.exceptions.InvalidInput, msg=str(kwargs)):
                c.list_operations(**kwargs)
        self.assertEqual(len(c.list_operations(MaxItems=100)["Operations"]), len(Fixture.operations))

    def test_markers_cannot_be_forged_or_moved_to_another_filter(self):
        c = client()
        marker = c.list_operations(MaxItems=2)["NextPageMarker"]
        self.assertEqual(len(c.list_operations(MaxItems=2, Marker=marker)["Operations"]), 2)
        position, _, tag = marker.partition(".")
        flipped = tag[:-1] + ("A" if tag[-1] != "A" else "B")
        for bad in ["garbage", position + "." + flipped, marker + "x"]:
            with self.assertRaises(c.exceptions.InvalidInput, msg=bad):
                c.list_operations(MaxItems=2, Marker=bad)
        for other_filter in [dict(SortOrder="ASC"), dict(Status=["SUBMITTED"])]:
            with self.assertRaises(c.exceptions.InvalidInput):
                c.list_operations(MaxItems=2, Marker=marker, **other_filter)


class Protocol(unittest.TestCase):
    def test_an_unknown_target_is_unknown_operation_exception(self):
        c = client()
        e = error_of(c.list_domains)
        self.assertEqual(e.response["Error"]["Code"], "UnknownOperationException")
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        status, body, _ = raw("NoSuchThing", {})
        self.assertEqual((status, body["__type"]), (400, "UnknownOperationException"))

    def test_other_sdks_signing_habits_are_accepted(self):
        body = json.dumps({"domainName": Fixture.pending}).encode()
        status, answer, headers = raw(
            "GetContactReachabilityStatus",
            body,
            extra_headers={
                "Content-Length": str(len(body)),
                "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest(),
                "X-Amz-User-Agent": "aws-sdk-js/3.0.0",
                "amz-sdk-invocation-id": str(uuid.uuid4()),
                "amz-sdk-request": "attempt=1; max=3",
            },
        )
        self.assertEqual((status, answer), (200, {"domainName": Fixture.pending, "status": "PENDING"}))
        self.assertEqual(headers["Content-Type"], CONTENT_TYPE)

    def test_a_body_that_is_not_a_json_object(self):
        status, body, _ = raw("ListOperations", b"[1, 2]")
        self.assertEqual((status, body["__type"]), (400, "SerializationException"))


class Signatures(unittest.TestCase):
    def assert_refused(self, error, code):
        self.assertEqual(error.response["Error"]["Code"], code, error.response)
        meta = error.response["ResponseMetadata"]
        self.assertEqual(meta["HTTPStatusCode"], 403)
        self.assertTrue(meta["HTTPHeaders"].get("x-amzn-requestid"))
        self.assertTrue(meta["HTTPHeaders"].get("date"))

    def test_a_wrong_secret_is_invalid_signature(self):
        c = client(aws_secret_access_key=SECRET + "x")
        e = error_of(c.get_contact_reachability_status, domainName=Fixture.pending)
        self.assert_refused(e, "InvalidSignatureException")
        self.assertNotIn(SECRET, str(e.response))

    def test_an_unknown_key_is_unrecognized_client(self):
        c = client(aws_access_key_id="AKIDUNKNOWN0000000000")
        e = error_of(c.get_contact_reachability_status, domainName=Fixture.pending)
        self.assert_refused(e, "UnrecognizedClientException")

    def test_a_session_token_is_unrecognized_client(self):
        c = client(aws_session_token="FQoGZXIvYXdzEXAMPLESESSIONTOKEN")
        e = error_of(c.get_contact_reachability_status, domainName=Fixture.pending)
        self.assert_refused(e, "UnrecognizedClientException")

    def test_another_region_is_invalid_signature(self):
        other = "ap-southeast-2" if REGION != "ap-southeast-2" else "us-west-2"
        e = error_of(client(region_name=other).list_operations)
        self.assert_refused(e, "InvalidSignatureException")
        self.assertIn("region", e.response["Error"]["Message"])

    def test_an_unsigned_request_is_missing_authentication_token(self):
        c = client(config=Config(signature_version=UNSIGNED))
        e = error_of(c.get_contact_reachability_status, domainName=Fixture.pending)
        self.assert_refused(e, "MissingAuthenticationTokenException")

    def test_a_timestamp_more_than_15_minutes_off_is_invalid_signature(self):
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        for skew, accepted in [(-20, False), (20, False), (-14, True), (14, True)]:
            with mock.patch(
                "botocore.auth.get_current_datetime",
                return_value=now + datetime.timedelta(minutes=skew),
            ):
                c = client(config=Config(retries={"max_attempts": 1}))
                if accepted:
                    c.get_contact_reachability_status(domainName=Fixture.pending)
                else:
                    e = error_of(c.get_contact_reachability_status, domainName=Fixture.pending)
                    self.assert_refused(e, "InvalidSignatureException")
                    self.assertIn("Signature", e.response["Error"]["Message"])

    def test_unsigned_payload_and_a_false_body_hash_are_refused(self):
        body = {"domainName": Fixture.pending}
        status, answer, _ = raw(
            "GetContactReachabilityStatus", body, extra_headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
        )
        self.assertEqual((status, answer["__type"]), (403, "InvalidSignatureException"))
        other = hashlib.sha256(json.dumps({"domainName": Fixture.validated}).encode()).hexdigest()
        status, answer, _ = raw(
            "GetContactReachabilityStatus", body, extra_headers={"X-Amz-Content-SHA256": other}
        )
        self.assertEqual((status, answer["__type"]), (403, "InvalidSignatureException"))
        self.assertIn("x-amz-content-sha256", answer["message"])

    def test_the_target_must_be_signed_and_signed_headers_sent(self):
        def add_target(h):
            h["X-Amz-Target"] = PREFIX + "GetContactReachabilityStatus"

        status, answer, _ = raw(
            "GetContactReachabilityStatus",
            {"domainName": Fixture.pending},
            extra_headers={"X-Amz-Target": None},
            after_signing=add_target,
        )
        self.assertEqual((status, answer["__type"]), (403, "InvalidSignatureException"))
        self.assertIn("x-amz-target", answer["message"])

        def drop_custom(h):
            del h["X-Custom"]

        status, answer, _ = raw(
            "GetContactReachabilityStatus",
            {"domainName": Fixture.pending},
            extra_headers={"X-Custom": "1"},
            after_signing=drop_custom,
        )
        self.assertEqual((status, answer["__type"]), (403, "InvalidSignatureException"))
        self.assertIn("x-custom", answer["message"])

    def test_a_tampered_body_or_target_is_invalid_signature(self):
        def swap_target(h):
            h["X-Amz-Target"] = PREFIX + "ResendContactReachabilityEmail"

        status, answer, _ = raw(
            "GetContactReachabilityStatus", {"domainName": Fixture.pending}, after_signing=swap_target
        )
        self.assertEqual((status, answer["__type"]), (403, "InvalidSignatureException"))


class AwsCli(unittest.TestCase):
    def aws(self, *args, **env_overrides):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=KEY_ID,
            AWS_SECRET_ACCESS_KEY=SECRET,
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            AWS_PAGER="",
        )
        env.update(env_overrides)
        return subprocess.run(
            [AWS_CLI, "route53domains", *args, "--endpoint-url", ENDPOINT, "--region", REGION, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_get_contact_reachability_status(self):
        r = self.aws("get-contact-reachability-status", "--domain-name", Fixture.pending)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"domainName": Fixture.pending, "status": "PENDING"})

    def test_list_operations_pages_through_everything(self):
        r = self.aws("list-operations", "--page-size", "6")
        self.assertEqual(r.returncode, 0, r.stderr)
        ids = [o["OperationId"] for o in json.loads(r.stdout)["Operations"]]
        self.assertEqual(sorted(ids), sorted(Fixture.operations))

    def test_get_operation_detail_and_an_unknown_id(self):
        op_id = next(iter(Fixture.operations))
        r = self.aws("get-operation-detail", "--operation-id", op_id)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["OperationId"], op_id)
        r = self.aws("get-operation-detail", "--operation-id", str(uuid.uuid4()))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("InvalidInput", r.stderr)

    def test_a_wrong_secret_fails(self):
        r = self.aws(
            "get-contact-reachability-status", "--domain-name", Fixture.pending, AWS_SECRET_ACCESS_KEY="wrong" + SECRET
        )
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("InvalidSignatureException", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
