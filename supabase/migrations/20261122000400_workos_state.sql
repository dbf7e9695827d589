-- WorkOS sign-in state: single use.
--
-- The state itself is sealed (AES-GCM) and carries its own expiry, so nothing is stored when
-- workos-login hands one out. workos-callback consumes the state's nonce here before it calls
-- WorkOS: the primary key makes consumption atomic (of two concurrent callbacks with one state,
-- exactly one inserts), and a state whose nonce is already here is refused as INVALID_STATE.
--
-- Why a separate round trip before the code exchange rather than inside identity.sign_in's
-- transaction: a replayed callback carries an already-used code, so WorkOS would refuse it first
-- and the replay would surface as a provider error instead of INVALID_STATE; consuming first
-- answers replays correctly and never calls WorkOS for them. The cost is one indexed insert.
-- A state spent on a sign-in that then fails (WorkOS error, EMAIL_NOT_VERIFIED …) stays spent:
-- the client starts over with workos-login, as it must anyway because the code is single use.

create table identity.consumed_workos_state (
  nonce uuid primary key,
  -- The state's own expiry: after it the sealed state is refused anyway, so the row may go.
  expires_at timestamptz not null,
  consumed_at timestamptz not null
);
create index consumed_workos_state_expires_at_idx on identity.consumed_workos_state (expires_at);
alter table identity.consumed_workos_state enable row level security;
-- No policies: neither anon nor authenticated may read or write it; the service connection does.

-- Consumes a state's nonce: true the first time, false ever after. Also sweeps rows whose state
-- expired more than an hour ago (the hour absorbs clock differences between function instances),
-- so the table holds at most about the last hour of sign-ins.
create function identity.consume_workos_state(
  p_nonce uuid,
  p_expires_at timestamptz,
  p_now timestamptz
) returns boolean
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_consumed boolean;
begin
  insert into identity.consumed_workos_state (nonce, expires_at, consumed_at)
  values (p_nonce, p_expires_at, p_now)
  on conflict (nonce) do nothing;
  v_consumed := found;

  delete from identity.consumed_workos_state
  where expires_at < p_now - interval '1 hour';

  return v_consumed;
end
$$;

revoke execute on function identity.consume_workos_state(uuid, timestamptz, timestamptz)
  from public, anon, authenticated;
