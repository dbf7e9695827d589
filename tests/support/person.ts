/** Provider identities and the person upsert, as the sign-in SQL sees them. */
import type {
  IdentityError,
  Person,
  ProviderIdentity,
} from "../../supabase/functions/_shared/person.ts";
import { testSql, uniqueEmail } from "./db.ts";

/** A provider identity with a fresh user id and email; `overrides` breaks one thing. */
export function identity(overrides: Partial<ProviderIdentity> = {}): ProviderIdentity {
  return {
    provider: "stytch",
    providerUserId: `user-test-${crypto.randomUUID()}`,
    email: uniqueEmail("person"),
    emailVerified: true,
    displayName: null,
    ...overrides,
  };
}

export type UpsertResult =
  | { ok: true; person: Person & Record<string, unknown>; isNewUser: boolean }
  | { ok: false; error: IdentityError };

/** identity.upsert_person alone (sign-in runs it inside identity.sign_in). */
export async function upsertPerson(
  who: ProviderIdentity,
  options: { signupMode: "open" | "invite"; now: Date },
): Promise<UpsertResult> {
  const [{ result }] = await testSql()`
    select identity.upsert_person(
      p_provider => ${who.provider}, p_provider_user_id => ${who.providerUserId},
      p_email => ${who.email}, p_email_verified => ${who.emailVerified},
      p_display_name => ${who.displayName}, p_invite_only => ${options.signupMode === "invite"},
      p_now => ${options.now}
    ) as result`;
  if (result.error) return { ok: false, error: result.error };
  return { ok: true, person: result.person, isNewUser: result.is_new_user };
}

/** How many persons hold `email`, and how many sessions they have. */
export async function personsAndSessions(email: string) {
  const [row] = await testSql()`
    select
      (select count(*)::int from identity.person where email = ${email}) as persons,
      (select count(*)::int from identity.session s join identity.person p on p.id = s.person_id
        where p.email = ${email}) as sessions`;
  return row as { persons: number; sessions: number };
}
