-- Identity: people, workspaces, sessions, and the SQL functions the Edge Functions call.
--
-- Every table has row-level security on. A signed-in person (role `authenticated`, auth.uid() =
-- person id) may read their own person row, their memberships and their workspaces; nothing else
-- is readable or writable by `anon` or `authenticated`. The functions write through the service
-- connection (SUPABASE_DB_URL), which owns the tables.

create extension if not exists citext with schema extensions;

create schema if not exists identity;
grant usage on schema identity to authenticated, service_role;

-- Functions in this schema are called by the Edge Functions' service connection only.
alter default privileges in schema identity revoke execute on functions from public;

create table identity.person (
  id uuid primary key default gen_random_uuid(),
  email extensions.citext unique check (length(email) <= 254 and position('@' in email) > 1),
  workos_user_id text unique,
  stytch_user_id text unique,
  phone text unique check (phone ~ '^\+[1-9][0-9]{6,14}$'),
  display_name text check (length(display_name) <= 200),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  last_sign_in_at timestamptz
);
alter table identity.person enable row level security;

create table identity.workspace (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  created_by uuid references identity.person (id) on delete set null,
  created_at timestamptz not null default now()
);
alter table identity.workspace enable row level security;

create table identity.membership (
  workspace_id uuid not null references identity.workspace (id) on delete cascade,
  person_id uuid not null references identity.person (id) on delete cascade,
  role text not null check (role in ('owner', 'admin', 'member')),
  created_at timestamptz not null default now(),
  primary key (workspace_id, person_id)
);
create index membership_person_id_idx on identity.membership (person_id);
alter table identity.membership enable row level security;

create table identity.workspace_settings (
  workspace_id uuid primary key references identity.workspace (id) on delete cascade,
  locale text not null default 'en',
  timezone text not null default 'UTC',
  settings jsonb not null default '{}'::jsonb,
  updated_at timestamptz not null default now()
);
alter table identity.workspace_settings enable row level security;

create table identity.invitation (
  id uuid primary key default gen_random_uuid(),
  email extensions.citext not null check (length(email) <= 254),
  workspace_id uuid references identity.workspace (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  invited_by uuid references identity.person (id) on delete set null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '14 days',
  accepted_at timestamptz
);
create index invitation_open_email_idx on identity.invitation (email) where accepted_at is null;
alter table identity.invitation enable row level security;

-- A platform session. Its refresh tokens are not stored at all: a refresh token is
-- (session id, counter, HMAC of both under a key derived from the JWT secret), so the row only
-- keeps the counter of the one live token and when it last advanced (for the 10 s reuse grace).
create table identity.session (
  id uuid primary key default gen_random_uuid(),
  person_id uuid not null references identity.person (id) on delete cascade,
  provider text not null check (provider in ('stytch', 'workos')),
  amr_method text not null check (amr_method in ('otp', 'sso/oauth')),
  workos_session_id text,
  refresh_counter bigint not null default 0,
  refreshed_at timestamptz,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  revoked_at timestamptz,
  revoked_reason text check (revoked_reason in ('logout', 'refresh_token_reused'))
);
create index session_person_id_idx on identity.session (person_id);
alter table identity.session enable row level security;

create table identity.email_outbox (
  id uuid primary key default gen_random_uuid(),
  person_id uuid not null references identity.person (id) on delete cascade,
  to_email extensions.citext not null,
  template text not null,
  status text not null check (status in ('awaiting_confirmation', 'ready', 'sent', 'failed')),
  payload jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  ready_at timestamptz,
  sent_at timestamptz,
  unique (person_id, template)
);
alter table identity.email_outbox enable row level security;

create schema if not exists whatsapp;

create table whatsapp.message (
  id bigint generated always as identity primary key,
  wamid text not null unique,
  direction text not null check (direction in ('inbound', 'outbound')),
  phone_number_id text,
  wa_id text,
  person_id uuid references identity.person (id) on delete set null,
  profile_name text,
  type text,
  text_body text,
  sent_at timestamptz,
  status text not null check (status in ('received', 'sent', 'delivered', 'read', 'failed')),
  status_at timestamptz,
  errors jsonb,
  raw jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table whatsapp.message enable row level security;

-- What a signed-in person may read. `(select auth.uid())` is evaluated once per statement.
grant select on identity.person, identity.workspace, identity.membership to authenticated;

create policy "person reads own row" on identity.person
  for select to authenticated
  using ((select auth.uid()) = id);

create policy "person reads own memberships" on identity.membership
  for select to authenticated
  using ((select auth.uid()) = person_id);

create policy "person reads own workspaces" on identity.workspace
  for select to authenticated
  using (id in (select m.workspace_id from identity.membership m where m.person_id = (select auth.uid())));

-- ---------------------------------------------------------------------------------------------
-- SQL functions: one call, one round trip, per request. Every name is schema-qualified; the
-- search path only brings `extensions`, so citext's case-insensitive `=` is the one compared with.
-- ---------------------------------------------------------------------------------------------

-- The person as API answers show it. A single expression without SET clauses, so the planner
-- inlines it into its callers.
create function identity.person_json(p identity.person) returns jsonb
language sql stable
as $$
  select pg_catalog.jsonb_build_object(
    'id', p.id, 'email', p.email, 'display_name', p.display_name, 'created_at', p.created_at
  )
$$;

-- The workspace a person's tokens carry: the owned one first, else the earliest membership. Used
-- by every token path (platform tokens here, Supabase Auth tokens through the access token hook).
create function identity.current_workspace(p_person_id uuid)
returns table (workspace_id uuid, role text)
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
begin
  return query
  select m.workspace_id, m.role
  from identity.membership m
  where m.person_id = p_person_id
  order by m.role = 'owner' desc, m.created_at, m.workspace_id
  limit 1;
end
$$;

-- Everything a token response needs for a session: person, claims, and the live refresh counter.
-- PL/pgSQL rather than SQL here and below: its query plans are cached per connection, which halves
-- the database time of the hot paths (me, refresh).
create function identity.session_payload(s identity.session) returns jsonb
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
declare
  v_payload jsonb;
begin
  select jsonb_build_object(
    'session_id', s.id,
    'refresh_counter', s.refresh_counter,
    'person', identity.person_json(p),
    'claims', jsonb_build_object(
      'email', coalesce(p.email::text, ''),
      'phone', coalesce(p.phone, ''),
      'provider', s.provider,
      'providers', to_jsonb(array_remove(array[
        case when p.stytch_user_id is not null then 'stytch' end,
        case when p.workos_user_id is not null then 'workos' end,
        (select u.raw_app_meta_data ->> 'provider' from auth.users u where u.id = p.id)
      ], null)),
      'amr_method', s.amr_method,
      'amr_timestamp', floor(extract(epoch from s.created_at))::bigint,
      'workspace_id', w.workspace_id,
      'workspace_role', w.role
    )
  )
  into v_payload
  from identity.person p
  left join lateral identity.current_workspace(p.id) w on true
  where p.id = s.person_id;
  return v_payload;
end
$$;

-- Find or create the person a provider sign-in belongs to. Keys on the provider's user id; falls
-- back to the email only when the provider says it is verified, so an unverified address can
-- never take over someone else's person. Safe under concurrency: a lost insert race loops and
-- finds the winner's row.
-- With p_invite_only, a new person needs an open invitation for their verified email.
-- Returns {person, is_new_user} or {error: 'EMAIL_NOT_VERIFIED' | 'IDENTITY_CONFLICT' | 'SIGNUP_DISABLED'}.
create function identity.upsert_person(
  p_provider text,
  p_provider_user_id text,
  p_email text,
  p_email_verified boolean,
  p_display_name text,
  p_invite_only boolean,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_email extensions.citext := nullif(btrim(p_email), '');
  v_person identity.person;
  v_is_new boolean := false;
  v_attempt int := 0;
begin
  if p_provider not in ('stytch', 'workos') or coalesce(p_provider_user_id, '') = '' then
    raise exception 'upsert_person: provider and provider user id are required';
  end if;

  loop
    v_attempt := v_attempt + 1;
    if v_attempt > 5 then
      raise exception 'upsert_person: no progress after % attempts', v_attempt - 1;
    end if;

    if p_provider = 'stytch' then
      select * into v_person from identity.person where stytch_user_id = p_provider_user_id for update;
    else
      select * into v_person from identity.person where workos_user_id = p_provider_user_id for update;
    end if;
    exit when found;

    if v_email is not null then
      select * into v_person from identity.person where email = v_email for update;
      if found then
        if not p_email_verified then
          return jsonb_build_object('error', 'EMAIL_NOT_VERIFIED');
        end if;
        if (p_provider = 'stytch' and v_person.stytch_user_id <> p_provider_user_id)
          or (p_provider = 'workos' and v_person.workos_user_id <> p_provider_user_id) then
          -- Already linked to another account of the same provider: never re-link silently.
          return jsonb_build_object('error', 'IDENTITY_CONFLICT');
        end if;
        update identity.person
        set stytch_user_id = case when p_provider = 'stytch' then p_provider_user_id else stytch_user_id end,
            workos_user_id = case when p_provider = 'workos' then p_provider_user_id else workos_user_id end
        where id = v_person.id
        returning * into v_person;
        exit;
      end if;
    end if;

    if p_invite_only and not (p_email_verified and exists (
      select 1 from identity.invitation i
      where i.email = v_email and i.accepted_at is null and i.expires_at > p_now
    )) then
      return jsonb_build_object('error', 'SIGNUP_DISABLED');
    end if;

    -- A new person. An unverified email is not stored: it would claim an address nobody proved.
    insert into identity.person (email, stytch_user_id, workos_user_id, display_name, created_at, updated_at)
    values (
      case when p_email_verified then v_email end,
      case when p_provider = 'stytch' then p_provider_user_id end,
      case when p_provider = 'workos' then p_provider_user_id end,
      nullif(btrim(p_display_name), ''),
      p_now,
      p_now
    )
    on conflict do nothing
    returning * into v_person;
    if found then
      v_is_new := true;
      exit;
    end if;
    -- Lost the race to a concurrent first sign-in: the next pass finds its row.
  end loop;

  update identity.person
  set last_sign_in_at = p_now,
      updated_at = p_now,
      display_name = coalesce(display_name, nullif(btrim(p_display_name), ''))
  where id = v_person.id
  returning * into v_person;

  -- A person known by provider id whose email the provider now proves, and nobody else holds.
  if v_person.email is null and p_email_verified and v_email is not null
    and not exists (select 1 from identity.person where email = v_email) then
    begin
      update identity.person set email = v_email where id = v_person.id returning * into v_person;
    exception when unique_violation then
      null; -- taken by a concurrent sign-in in the meantime; keep the person without email
    end;
  end if;

  return jsonb_build_object('person', to_jsonb(v_person), 'is_new_user', v_is_new);
end
$$;

-- Rotate a refresh token (session id + counter, already authenticated by its HMAC).
-- status: 'rotated' (first use), 'replayed' (the previous token again within the grace period:
-- same successor), 'reused' (an older token: the session is revoked), 'revoked', 'unknown'.
create function identity.rotate_refresh_token(
  p_session_id uuid,
  p_counter bigint,
  p_reuse_grace_seconds int,
  p_session_ttl_seconds int,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_session identity.session;
  v_status text;
begin
  select * into v_session from identity.session where id = p_session_id for update;
  if not found or p_counter > v_session.refresh_counter then
    return jsonb_build_object('status', 'unknown');
  end if;
  if v_session.revoked_at is not null or v_session.expires_at <= p_now then
    return jsonb_build_object('status', 'revoked');
  end if;

  if p_counter = v_session.refresh_counter then
    update identity.session
    set refresh_counter = refresh_counter + 1,
        refreshed_at = p_now,
        expires_at = p_now + make_interval(secs => p_session_ttl_seconds)
    where id = v_session.id
    returning * into v_session;
    v_status := 'rotated';
  elsif p_counter = v_session.refresh_counter - 1
    and v_session.refreshed_at > p_now - make_interval(secs => p_reuse_grace_seconds) then
    v_status := 'replayed';
  else
    update identity.session
    set revoked_at = p_now, revoked_reason = 'refresh_token_reused'
    where id = v_session.id;
    return jsonb_build_object('status', 'reused');
  end if;

  return identity.session_payload(v_session) || jsonb_build_object('status', v_status);
end
$$;

-- The live session behind an access token, for a bearer-only refresh; null when revoked/expired.
create function identity.live_session(p_session_id uuid, p_person_id uuid, p_now timestamptz)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
declare
  v_session identity.session;
begin
  select * into v_session
  from identity.session s
  where s.id = p_session_id and s.person_id = p_person_id
    and s.revoked_at is null and s.expires_at > p_now;
  return case when found then identity.session_payload(v_session) end;
end
$$;

-- `me`: the person and their workspaces, or null when the session is revoked or expired. Built as
-- json, not jsonb: it is only sent on, and json is built and printed without a binary detour.
create function identity.me(p_session_id uuid, p_person_id uuid, p_now timestamptz)
returns json
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
declare
  v_me json;
begin
  select json_build_object(
    'person', json_build_object(
      'id', p.id, 'email', p.email, 'display_name', p.display_name, 'created_at', p.created_at
    ),
    'workspaces', coalesce((
      select json_agg(json_build_object('id', w.id, 'name', w.name, 'role', m.role) order by m.created_at)
      from identity.membership m
      join identity.workspace w on w.id = m.workspace_id
      where m.person_id = p.id
    ), '[]'::json)
  )
  into v_me
  from identity.session s
  join identity.person p on p.id = s.person_id
  where s.id = p_session_id and s.person_id = p_person_id
    and s.revoked_at is null and s.expires_at > p_now;
  return v_me;
end
$$;

-- Logout: revoke the session (its refresh tokens stop working at once). Returns
-- {workos_session_id} for a session that was live, or null.
create function identity.revoke_session(p_session_id uuid, p_person_id uuid, p_now timestamptz)
returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_revoked jsonb;
begin
  update identity.session
  set revoked_at = p_now, revoked_reason = 'logout'
  where id = p_session_id and person_id = p_person_id
    and revoked_at is null and expires_at > p_now
  returning jsonb_build_object('workos_session_id', workos_session_id) into v_revoked;
  return v_revoked;
end
$$;

revoke execute on all functions in schema identity from public, anon, authenticated;
