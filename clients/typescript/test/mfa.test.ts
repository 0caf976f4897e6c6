// A second factor through the SDK, against a live server: enrolling an
// authenticator app, signing in with its codes or a recovery code, and
// turning it off. The codes are computed here, from RFC 6238.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { ApiError, MfaRequired, OAuthError, createGatehouse } from "../src/index.js";
import { PASSWORD, register, signedIn, startGatehouse, totp } from "./server.js";

const server = await startGatehouse();
after(() => server.stop());

function amr(accessToken: string): string[] {
  const payload = accessToken.split(".")[1]!;
  return JSON.parse(Buffer.from(payload, "base64url").toString()).amr;
}

test("signIn resolves to a typed MfaRequired step that a code or a recovery code completes", async () => {
  const username = await register(server.url);
  const { account, session } = createGatehouse({ baseUrl: server.url });
  signedIn(await session.signIn(username, PASSWORD));

  await assert.rejects(account.startTotpEnrolment("not the password"), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, "invalid_current_password");
    return true;
  });
  const enrolment = await account.startTotpEnrolment(PASSWORD);
  assert.match(enrolment.secret, /^[A-Z2-7]{32}$/);
  assert.ok(enrolment.otpauthUri.startsWith("otpauth://totp/Gatehouse:"));
  assert.ok(enrolment.qrSvg.includes("<svg"));
  await assert.rejects(account.confirmTotpEnrolment("000000" === totp(enrolment.secret) ? "111111" : "000000"), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, "invalid_code");
    assert.equal(error.status, 400);
    return true;
  });
  // The previous step's code (within the skew), so that this step's is
  // still unused for the sign-in below.
  const recoveryCodes = await account.confirmTotpEnrolment(totp(enrolment.secret, Date.now() - 30_000));
  assert.equal(recoveryCodes.length, 10);

  const other = createGatehouse({ baseUrl: server.url }).session;
  await assert.rejects(other.signIn(username, "not the password"), (error: unknown) => {
    assert.ok(error instanceof OAuthError);
    assert.equal(error.error, "invalid_grant");
    return true;
  });
  const step = await other.signIn(username, PASSWORD);
  assert.ok(step instanceof MfaRequired, "a second factor is asked for");
  assert.equal(step.kind, "mfa_required");
  assert.equal(await other.current(), null, "no session before the second step");
  await assert.rejects(step.complete({ otp: totp(enrolment.secret) === "123456" ? "654321" : "123456" }), (error: unknown) => {
    assert.ok(error instanceof OAuthError);
    assert.equal(error.status, 400);
    assert.equal(error.error, "invalid_grant");
    return true;
  });
  const tokens = await step.complete({ otp: totp(enrolment.secret) });
  assert.deepEqual(amr(tokens.accessToken), ["pwd", "otp", "mfa"]);
  assert.equal((await other.current())?.refreshToken, tokens.refreshToken, "the session is kept");

  const third = createGatehouse({ baseUrl: server.url }).session;
  const again = await third.signIn(username, PASSWORD);
  assert.ok(again instanceof MfaRequired);
  const recovered = await again.complete({ recoveryCode: recoveryCodes[0]! });
  assert.deepEqual(amr(recovered.accessToken), ["pwd", "mfa"]);

  // Off again, with a recovery code: the password alone signs in.
  const { account: mine } = createGatehouse({ baseUrl: server.url, storage: third.storage });
  await mine.removeTotp(PASSWORD, recoveryCodes[1]!);
  const plain = await createGatehouse({ baseUrl: server.url }).session.signIn(username, PASSWORD);
  assert.ok(!(plain instanceof MfaRequired));
  assert.deepEqual(amr(plain.accessToken), ["pwd"]);
});
