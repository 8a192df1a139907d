// A certified relying-party library, openid-client, against Latchkey's OpenID Connect provider.
//
// Run by tests/api/openid_client.rs as `node openid_client.mjs` with ISSUER, CLIENT_ID, CLIENT_SECRET,
// REDIRECT_URI and POST_LOGOUT_REDIRECT_URI in the environment. The Rust side plays the browser: this
// script prints the authorization URL, reads the callback URL (the redirect carrying the code) as one
// line on standard input, and prints each result as one JSON line {"step": ..., ...} on standard output.
// Any failure: the error on standard error and a non-zero exit.

import * as client from 'openid-client'
import { createInterface } from 'node:readline'

function env(name) {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

function emit(step, fields) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + '\n')
}

// Standard input, one line at a time.
const input = createInterface({ input: process.stdin, terminal: false })[Symbol.asyncIterator]()
async function readLine(what) {
  const { value, done } = await input.next()
  if (done) throw new Error(`standard input ended before ${what}`)
  return value.trim()
}

// Runs `action`, which must fail with an OAuth error or a refusal; returns what the library said.
async function refused(what, action) {
  try {
    await action()
  } catch (error) {
    // A WWW-Authenticate challenge (RFC 6750 §3) carries its error code as a parameter of the challenge.
    const challenge = Array.isArray(error.cause) ? error.cause.find((c) => c.scheme === 'bearer') : undefined
    const code = error.error ?? challenge?.parameters?.error ?? null
    return { name: error.name, code: error.code ?? null, error: code, status: error.status ?? null }
  }
  throw new Error(`${what} succeeded, but it should have been refused`)
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`)
}

async function main() {
  const issuer = new URL(env('ISSUER'))
  const clientId = env('CLIENT_ID')
  const redirectUri = env('REDIRECT_URI')
  const postLogoutRedirectUri = env('POST_LOGOUT_REDIRECT_URI')

  // Discovery (the issuer must be exactly the one asked for); plain HTTP only because the test issuer is
  // a loopback address. Non-repudiation checks: every ID token's signature is verified against jwks_uri.
  const execute = [client.enableNonRepudiationChecks]
  if (issuer.protocol === 'http:') execute.unshift(client.allowInsecureRequests)
  const config = await client.discovery(issuer, clientId, env('CLIENT_SECRET'), undefined, { execute })
  const metadata = config.serverMetadata()
  emit('discovery', {
    issuer: metadata.issuer,
    end_session_endpoint: metadata.end_session_endpoint ?? null,
    revocation_endpoint: metadata.revocation_endpoint ?? null,
    pkce: metadata.supportsPKCE(),
  })

  // The authorization request: PKCE S256, state, nonce; prompt=consent so that offline_access is granted.
  const codeVerifier = client.randomPKCECodeVerifier()
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier)
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizationUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access roles',
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
    prompt: 'consent',
  })
  emit('authorization_url', { url: authorizationUrl.href, state, nonce })

  // The browser comes back: the library checks state and iss, sends the verifier, checks the ID token.
  const callback = new URL(await readLine('the callback URL'))
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  const claims = tokens.claims()
  assert(claims, 'an ID token')
  assert(tokens.refresh_token, 'a refresh token (offline_access with prompt=consent)')
  assert(tokens.token_type.toLowerCase() === 'bearer', `token_type bearer, not ${tokens.token_type}`)
  emit('tokens', {
    claims,
    token_type: tokens.token_type,
    scope: tokens.scope ?? null,
    expires_in: tokens.expiresIn() ?? null,
    has_refresh_token: Boolean(tokens.refresh_token),
  })

  // Userinfo with the access token, held to the ID token's subject.
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub)
  emit('userinfo', { userinfo })

  // Refresh: a new pair (the refresh token rotates) and a new ID token for the same person.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token)
  const renewed = refreshed.claims()
  assert(refreshed.access_token, 'a new access token')
  assert(!renewed || renewed.sub === claims.sub, 'the renewed ID token names the same subject')
  emit('refresh', {
    claims: renewed ?? null,
    access_token_changed: refreshed.access_token !== tokens.access_token,
    refresh_token_changed: Boolean(refreshed.refresh_token) && refreshed.refresh_token !== tokens.refresh_token,
    has_refresh_token: Boolean(refreshed.refresh_token),
  })
  const renewedUserinfo = await client.fetchUserInfo(config, refreshed.access_token, claims.sub)
  assert(renewedUserinfo.sub === claims.sub, 'userinfo with the refreshed access token')

  // A spent refresh token is refused (rotation).
  const spent = await refused('refreshing with the spent refresh token', () =>
    client.refreshTokenGrant(config, tokens.refresh_token),
  )
  emit('spent_refresh', spent)

  // Revocation (RFC 7009) of the current refresh token: the grant ends, with its access tokens.
  let revocation = null
  if (metadata.revocation_endpoint) {
    const token = refreshed.refresh_token ?? refreshed.access_token
    await client.tokenRevocation(config, token, { token_type_hint: 'refresh_token' })
    revocation = {
      refresh: await refused('refreshing with the revoked refresh token', () =>
        client.refreshTokenGrant(config, token),
      ),
      userinfo: await refused('userinfo with an access token of the revoked grant', () =>
        client.fetchUserInfo(config, refreshed.access_token, claims.sub),
      ),
    }
  }
  emit('revocation', { revoked: revocation !== null, ...(revocation ?? {}) })

  // RP-initiated logout: the URL the browser is sent to.
  const endSessionUrl = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogoutRedirectUri,
    state: client.randomState(),
  })
  emit('end_session_url', { url: endSessionUrl.href, state: endSessionUrl.searchParams.get('state') })
}

main().then(
  () => process.exit(0),
  (error) => {
    const detail = { name: error?.name, message: error?.message, code: error?.code, error: error?.error }
    if (error?.error_description) detail.error_description = error.error_description
    if (error?.cause) detail.cause = error.cause instanceof Error ? String(error.cause) : error.cause
    process.stderr.write(`openid_client.mjs failed: ${JSON.stringify(detail)}\n${error?.stack ?? error}\n`)
    process.exit(1)
  },
)
