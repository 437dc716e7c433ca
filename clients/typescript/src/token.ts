/**
 * What the client reads of a token: nothing is verified here (the server
 * does), only the expiry and subject, to refresh in time and to key the
 * inbox position.
 *
 * @module
 */

/** The claims of a JWT's payload the client uses, or `undefined` for a token that is not a JWT. */
export function jwtClaims(token: string): { sub?: string; exp?: number } | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims !== "object" || claims === null) return undefined;
    const { sub, exp } = claims as Record<string, unknown>;
    return {
      ...(typeof sub === "string" ? { sub } : {}),
      ...(typeof exp === "number" ? { exp } : {}),
    };
  } catch {
    return undefined;
  }
}
