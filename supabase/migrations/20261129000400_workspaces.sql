-- Workspaces, members and invitations (SPEC §10).
--
-- A token carries one current workspace (app_metadata.workspace_id / workspace_role). Until now it
-- was computed afresh for every token (the owned workspace, else the earliest membership); now the
-- session remembers it:
--   * identity.session.workspace_id is set at sign-in to that same choice, and changed only by
--     identity.switch_workspace (the `workspaces` function's switch), so refreshes keep it;
--   * every token path reads it through identity.effective_workspace(person, preferred): the
--     preferred workspace while the person is still a member of it, else the sign-in choice. So a
--     removed member's next refresh falls back to a workspace they still have (and the session
--     remembers the fallback, so being invited back later does not move it again);
--   * the custom access token hook (Supabase Auth users) applies the same rule, with
--     raw_app_meta_data.workspace_id (copied into the claims' app_metadata) as the preference.
--
-- Invitations are accepted for the person's proven email (identity.person.email only ever holds a
-- proven address: a provider-verified email, or a confirmed Supabase Auth email while
-- confirmations prove anything, SPEC §13.4) at every sign-in and refresh, inside the one SQL call
-- each already makes: identity.sign_in, identity.rotate_refresh_token and identity.live_session.
-- Accepting never changes the current workspace.
--
-- One SQL function per operation of the `workspaces` function, each one transaction. Every
-- operation that changes members or invitations first locks the workspace row (FOR NO KEY UPDATE:
-- it serialises these operations per workspace but not the foreign-key checks of other inserts),
-- then reads the caller's role: so two owners demoting each other at once are serialised and the
-- second sees one owner left (LAST_OWNER), and twenty parallel invitations of one email renew one
-- invitation. A unique partial index on open invitations per (workspace, email) backs the upsert.
--
-- The operations answer jsonb (or json) with the result, or {error: <reason>} where reason is one
-- of session_revoked, not_renewable, workspace_not_found, member_not_found,
-- invitation_not_found, forbidden, not_a_member, last_owner, already_a_member; the Edge Function
-- turns reasons into statuses. A workspace the caller is not a member of is workspace_not_found,
-- exactly like one that does not exist, so workspace ids cannot be probed.

-- Policy numbers added or changed here (identity.policy_setting, see 20261129000100_restructure.sql).
insert into identity.policy_setting (name, value, note) values
  ('invitation_ttl_seconds', 60 * 60 * 24 * 7, 'an invitation is open 7 days')
on conflict (name) do update set value = excluded.value, note = excluded.note;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

-- The session's current workspace. Null until sign-in sets it (sessions opened before this
-- migration are set below); a deleted workspace makes it null, which reads as the sign-in choice.
alter table identity.session
  add column workspace_id uuid references identity.workspace (id) on delete set null;
create index session_workspace_id_idx on identity.session (workspace_id)
  where workspace_id is not null;

update identity.session s
set workspace_id = (select c.workspace_id from identity.current_workspace(s.person_id) c)
where s.revoked_at is null and s.expires_at > now();

-- Invitations: open 7 days from now on (also for rows written by hand), one open invitation per
-- (workspace, email). Earlier duplicates, if any, keep the one that expires last.
alter table identity.invitation
  alter column expires_at set default now() + interval '7 days';

delete from identity.invitation i
where i.accepted_at is null
  and exists (
    select 1 from identity.invitation o
    where o.workspace_id = i.workspace_id and o.email = i.email and o.accepted_at is null
      and (o.expires_at, o.id) > (i.expires_at, i.id)
  );

create unique index invitation_open_workspace_email_key
  on identity.invitation (workspace_id, email) where accepted_at is null;
create index invitation_workspace_id_idx on identity.invitation (workspace_id);

-- The outbox takes invitation emails, which go to an address that may belong to no person yet: the
-- person is optional, and the invitation is named instead. The welcome email keeps its
-- idempotency: unique (person_id, template) still holds for every row with a person, and a welcome
-- row must have one. Each invitation creation or renewal writes a new row (the delivery's
-- idempotency key is the row id, so a renewal after a sent email must be a new row); a renewal
-- replaces its invitation's row that is still waiting, so at most one waits per invitation.
alter table identity.email_outbox alter column person_id drop not null;
alter table identity.email_outbox
  add column invitation_id uuid references identity.invitation (id) on delete set null;
alter table identity.email_outbox
  add constraint email_outbox_welcome_person_check check (template <> 'welcome' or person_id is not null);
create unique index email_outbox_waiting_invitation_key
  on identity.email_outbox (invitation_id) where status = 'ready';

-- ---------------------------------------------------------------------------------------------
-- The current workspace
-- ---------------------------------------------------------------------------------------------

-- The workspace a token carries: p_preferred while the person is still a member of it, else the
-- sign-in choice (identity.current_workspace: the owned workspace, else the earliest membership).
-- Used by every token path and by the access token hook.
create function identity.effective_workspace(p_person_id uuid, p_preferred uuid)
returns table (workspace_id uuid, role text)
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
begin
  if p_preferred is not null then
    return query
    select m.workspace_id, m.role
    from identity.membership m
    where m.person_id = p_person_id and m.workspace_id = p_preferred;
    if found then
      return;
    end if;
  end if;
  return query select c.workspace_id, c.role from identity.current_workspace(p_person_id) c;
end
$$;

-- Everything a token response needs for a session (same shape as before); the workspace is the
-- session's current one, or the fallback when the person is no longer a member of it.
create or replace function identity.session_payload(s identity.session) returns jsonb
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
  left join lateral identity.effective_workspace(p.id, s.workspace_id) w on true
  where p.id = s.person_id;
  return v_payload;
end
$$;

-- Accepts the open invitations of the person's email (identity.person.email holds only a proven
-- address). Several for one workspace give the strongest of their roles; a membership the person
-- already has is kept as it is. A concurrent acceptance of the same invitation waits on its row
-- and then skips it.
create function identity.accept_invitations(p_person_id uuid, p_now timestamptz)
returns void
language plpgsql
set search_path = pg_catalog, extensions
as $$
begin
  with accepted as (
    update identity.invitation i
    set accepted_at = p_now
    from identity.person p
    where p.id = p_person_id and i.email = p.email
      and i.accepted_at is null and i.expires_at > p_now
    returning i.workspace_id, i.role
  )
  insert into identity.membership (workspace_id, person_id, role, created_at)
  select distinct on (a.workspace_id) a.workspace_id, p_person_id, a.role, p_now
  from accepted a
  where a.workspace_id is not null
  order by a.workspace_id, array_position(array['owner', 'admin', 'member'], a.role)
  on conflict (workspace_id, person_id) do nothing;
end
$$;

-- At a refresh (by refresh token or bearer): accept open invitations, then keep the session's
-- current workspace one the person still has, remembering the fallback. Returns the session as it
-- now is. A concurrent switch wins: the fallback is only written over the value it replaces.
create function identity.sync_session(p_session identity.session, p_now timestamptz)
returns identity.session
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_workspace_id uuid;
  v_session identity.session;
begin
  perform identity.accept_invitations(p_session.person_id, p_now);
  select w.workspace_id into v_workspace_id
  from identity.effective_workspace(p_session.person_id, p_session.workspace_id) w;
  if v_workspace_id is not distinct from p_session.workspace_id then
    return p_session;
  end if;
  update identity.session s
  set workspace_id = v_workspace_id
  where s.id = p_session.id and s.workspace_id is not distinct from p_session.workspace_id
  returning * into v_session;
  if not found then
    select * into v_session from identity.session s where s.id = p_session.id;
  end if;
  return v_session;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Sign-in and refresh (same contracts as before; acceptance and the session's workspace added)
-- ---------------------------------------------------------------------------------------------

-- A provider sign-in (otp-verify, workos-callback): upsert, provisioning of a new person (which
-- accepts their invitations), acceptance for an existing person, then a session whose current
-- workspace is the sign-in choice.
drop function identity.sign_in(text, text, text, boolean, text, text, boolean, int, timestamptz);
create function identity.sign_in(
  p_provider text,
  p_provider_user_id text,
  p_email text,
  p_email_verified boolean,
  p_display_name text,
  p_workos_session_id text,
  p_invite_only boolean,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_upsert jsonb;
  v_person jsonb;
  v_person_id uuid;
  v_session identity.session;
begin
  v_upsert := identity.upsert_person(
    p_provider, p_provider_user_id, p_email, p_email_verified, p_display_name, p_invite_only, p_now
  );
  if v_upsert ? 'error' then
    return v_upsert;
  end if;
  v_person := v_upsert -> 'person';
  v_person_id := (v_person ->> 'id')::uuid;

  if (v_upsert ->> 'is_new_user')::boolean then
    perform identity.provision_person(
      v_person_id,
      v_person ->> 'email',
      true,
      coalesce(nullif(v_person ->> 'display_name', ''), split_part(v_person ->> 'email', '@', 1)),
      p_now
    );
  else
    perform identity.accept_invitations(v_person_id, p_now);
  end if;

  insert into identity.session (
    person_id, provider, amr_method, workos_session_id, workspace_id, created_at, expires_at
  )
  values (
    v_person_id,
    p_provider,
    case p_provider when 'stytch' then 'otp' else 'sso/oauth' end,
    p_workos_session_id,
    (select c.workspace_id from identity.current_workspace(v_person_id) c),
    p_now,
    p_now + make_interval(secs => identity.policy('session_ttl_seconds'))
  )
  returning * into v_session;

  return identity.session_payload(v_session)
    || jsonb_build_object('is_new_user', v_upsert -> 'is_new_user');
end
$$;

-- Rotate a refresh token (session id + counter, already authenticated by its HMAC). Statuses as
-- before; a rotated or replayed token also accepts invitations and keeps the workspace current.
drop function identity.rotate_refresh_token(uuid, bigint, int, int, timestamptz);
create function identity.rotate_refresh_token(
  p_session_id uuid,
  p_counter bigint,
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
        expires_at = p_now + make_interval(secs => identity.policy('session_ttl_seconds'))
    where id = v_session.id
    returning * into v_session;
    v_status := 'rotated';
  elsif p_counter = v_session.refresh_counter - 1
    and v_session.refreshed_at
      > p_now - make_interval(secs => identity.policy('refresh_reuse_grace_seconds')) then
    v_status := 'replayed';
  else
    update identity.session
    set revoked_at = p_now, revoked_reason = 'refresh_token_reused'
    where id = v_session.id;
    return jsonb_build_object('status', 'reused');
  end if;

  v_session := identity.sync_session(v_session, p_now);
  return identity.session_payload(v_session) || jsonb_build_object('status', v_status);
end
$$;

-- The live session behind an access token, for a bearer-only refresh:
--   null                    the session is revoked or expired (SESSION_REVOKED);
--   {renewable: false}      the token is of an older refresh generation, or the session's last
--                           sign-in or rotation is more than bearer_renewal_seconds ago (SPEC §13.3);
--   the session payload     otherwise; a renewable session also accepts invitations and keeps its
--                           workspace current, so the function is volatile.
drop function identity.live_session(uuid, uuid, timestamptz);
create function identity.live_session(
  p_session_id uuid,
  p_person_id uuid,
  p_generation bigint,
  p_now timestamptz
) returns jsonb
language plpgsql volatile
set search_path = pg_catalog, extensions
as $$
declare
  v_session identity.session;
begin
  select * into v_session
  from identity.session s
  where s.id = p_session_id and s.person_id = p_person_id
    and s.revoked_at is null and s.expires_at > p_now;
  if not found then
    return null;
  end if;
  if v_session.refresh_counter <> p_generation
    or coalesce(v_session.refreshed_at, v_session.created_at)
      + make_interval(secs => identity.policy('bearer_renewal_seconds')) <= p_now then
    return jsonb_build_object('renewable', false);
  end if;
  v_session := identity.sync_session(v_session, p_now);
  return identity.session_payload(v_session);
end
$$;

-- `me`: as before, with the workspaces in the order GET /workspaces lists them (ties between
-- memberships made in one transaction broken by id, so the order is stable).
create or replace function identity.me(p_session_id uuid, p_person_id uuid, p_now timestamptz)
returns json
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
declare
  v_me json;
begin
  select json_build_object(
    'person', identity.person_json(p),
    'workspaces', coalesce((
      select json_agg(json_build_object('id', w.id, 'name', w.name, 'role', m.role)
        order by m.created_at, m.workspace_id)
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

-- ---------------------------------------------------------------------------------------------
-- The `workspaces` function's operations
-- ---------------------------------------------------------------------------------------------

-- A member as the API shows it.
create function identity.member_json(m identity.membership, p identity.person) returns jsonb
language sql stable
as $$
  select pg_catalog.jsonb_build_object(
    'person_id', m.person_id,
    'display_name', p.display_name,
    'email', p.email,
    'role', m.role,
    'joined_at', m.created_at
  )
$$;

-- An invitation as the API shows it.
create function identity.invitation_json(i identity.invitation) returns jsonb
language sql stable
as $$
  select pg_catalog.jsonb_build_object(
    'id', i.id, 'email', i.email, 'role', i.role, 'expires_at', i.expires_at
  )
$$;

-- Who is calling a workspace operation: 'session_revoked' when the access token's session is not
-- live, 'workspace_not_found' when the workspace does not exist or the caller is not a member of
-- it, else the caller's role. With p_lock, the workspace row is locked first (FOR NO KEY UPDATE),
-- so the role read and everything after it see every earlier change of the workspace committed.
create function identity.workspace_caller_role(
  p_session_id uuid,
  p_person_id uuid,
  p_workspace_id uuid,
  p_lock boolean,
  p_now timestamptz
) returns text
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_role text;
begin
  if not exists (
    select 1 from identity.session s
    where s.id = p_session_id and s.person_id = p_person_id
      and s.revoked_at is null and s.expires_at > p_now
  ) then
    return 'session_revoked';
  end if;
  if p_lock then
    perform 1 from identity.workspace w where w.id = p_workspace_id for no key update;
  end if;
  select m.role into v_role
  from identity.membership m
  where m.workspace_id = p_workspace_id and m.person_id = p_person_id;
  return coalesce(v_role, 'workspace_not_found');
end
$$;

-- GET /workspaces: {workspaces: [{id, name, role, current}]}, `current` being the workspace the
-- session's next token carries.
create function identity.list_workspaces(p_session_id uuid, p_person_id uuid, p_now timestamptz)
returns json
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
declare
  v_session identity.session;
  v_current uuid;
begin
  select * into v_session
  from identity.session s
  where s.id = p_session_id and s.person_id = p_person_id
    and s.revoked_at is null and s.expires_at > p_now;
  if not found then
    return json_build_object('error', 'session_revoked');
  end if;
  select e.workspace_id into v_current
  from identity.effective_workspace(p_person_id, v_session.workspace_id) e;
  return json_build_object('workspaces', coalesce((
    select json_agg(json_build_object(
      'id', w.id, 'name', w.name, 'role', m.role, 'current', w.id is not distinct from v_current
    ) order by m.created_at, m.workspace_id)
    from identity.membership m
    join identity.workspace w on w.id = m.workspace_id
    where m.person_id = p_person_id
  ), '[]'::json));
end
$$;

-- POST /workspaces/{id}/switch: the session's current workspace becomes p_workspace_id, and the
-- answer is the session payload for a new access token (no new refresh token). Minting an access
-- token from an access token is a renewal, so the rule of the bearer-only refresh applies
-- (SPEC §13.3): only a token of the session's current refresh generation, and not later than
-- bearer_renewal_seconds after the last sign-in or rotation (else not_renewable).
create function identity.switch_workspace(
  p_session_id uuid,
  p_person_id uuid,
  p_generation bigint,
  p_workspace_id uuid,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_session identity.session;
begin
  select * into v_session
  from identity.session s
  where s.id = p_session_id and s.person_id = p_person_id
    and s.revoked_at is null and s.expires_at > p_now
  for update;
  if not found then
    return jsonb_build_object('error', 'session_revoked');
  end if;
  if v_session.refresh_counter <> p_generation
    or coalesce(v_session.refreshed_at, v_session.created_at)
      + make_interval(secs => identity.policy('bearer_renewal_seconds')) <= p_now then
    return jsonb_build_object('error', 'not_renewable');
  end if;
  if not exists (
    select 1 from identity.membership m
    where m.workspace_id = p_workspace_id and m.person_id = p_person_id
  ) then
    return jsonb_build_object('error', 'not_a_member');
  end if;
  update identity.session s set workspace_id = p_workspace_id
  where s.id = v_session.id
  returning * into v_session;
  return identity.session_payload(v_session);
end
$$;

-- GET /workspaces/{id}/members: {members: [...]}, for any member.
create function identity.list_members(
  p_session_id uuid,
  p_person_id uuid,
  p_workspace_id uuid,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_caller text := identity.workspace_caller_role(p_session_id, p_person_id, p_workspace_id, false, p_now);
begin
  if v_caller not in ('owner', 'admin', 'member') then
    return jsonb_build_object('error', v_caller);
  end if;
  return jsonb_build_object('members', coalesce((
    select jsonb_agg(identity.member_json(m, p) order by m.created_at, m.person_id)
    from identity.membership m
    join identity.person p on p.id = m.person_id
    where m.workspace_id = p_workspace_id
  ), '[]'::jsonb));
end
$$;

-- PATCH /workspaces/{id}/members/{person_id} {role}: owners and admins; only an owner grants or
-- removes `owner`; the last owner cannot be demoted. Answers {member}.
create function identity.update_member_role(
  p_session_id uuid,
  p_person_id uuid,
  p_workspace_id uuid,
  p_member_id uuid,
  p_role text,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_caller text;
  v_member identity.membership;
begin
  if p_role is null or p_role not in ('owner', 'admin', 'member') then
    raise exception 'update_member_role: unknown role %', p_role;
  end if;
  v_caller := identity.workspace_caller_role(p_session_id, p_person_id, p_workspace_id, true, p_now);
  if v_caller not in ('owner', 'admin', 'member') then
    return jsonb_build_object('error', v_caller);
  end if;
  if v_caller = 'member' then
    return jsonb_build_object('error', 'forbidden');
  end if;
  select * into v_member
  from identity.membership m
  where m.workspace_id = p_workspace_id and m.person_id = p_member_id
  for update;
  if not found then
    return jsonb_build_object('error', 'member_not_found');
  end if;
  if (p_role = 'owner' or v_member.role = 'owner') and v_caller <> 'owner' then
    return jsonb_build_object('error', 'forbidden');
  end if;
  if v_member.role = 'owner' and p_role <> 'owner' and (
    select count(*) from identity.membership m
    where m.workspace_id = p_workspace_id and m.role = 'owner'
  ) = 1 then
    return jsonb_build_object('error', 'last_owner');
  end if;
  if v_member.role <> p_role then
    update identity.membership m set role = p_role
    where m.workspace_id = p_workspace_id and m.person_id = p_member_id
    returning * into v_member;
  end if;
  return jsonb_build_object('member', (
    select identity.member_json(v_member, p) from identity.person p where p.id = p_member_id
  ));
end
$$;

-- DELETE /workspaces/{id}/members/{person_id}: owners and admins, or the member themself; an admin
-- cannot remove an owner; the last owner cannot leave. The removed person's sessions fall back at
-- their next refresh (identity.sync_session). Answers {removed: true}.
create function identity.remove_member(
  p_session_id uuid,
  p_person_id uuid,
  p_workspace_id uuid,
  p_member_id uuid,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_caller text;
  v_member identity.membership;
begin
  v_caller := identity.workspace_caller_role(p_session_id, p_person_id, p_workspace_id, true, p_now);
  if v_caller not in ('owner', 'admin', 'member') then
    return jsonb_build_object('error', v_caller);
  end if;
  if v_caller = 'member' and p_member_id <> p_person_id then
    return jsonb_build_object('error', 'forbidden');
  end if;
  select * into v_member
  from identity.membership m
  where m.workspace_id = p_workspace_id and m.person_id = p_member_id
  for update;
  if not found then
    return jsonb_build_object('error', 'member_not_found');
  end if;
  if v_member.role = 'owner' and v_caller <> 'owner' then
    return jsonb_build_object('error', 'forbidden');
  end if;
  if v_member.role = 'owner' and (
    select count(*) from identity.membership m
    where m.workspace_id = p_workspace_id and m.role = 'owner'
  ) = 1 then
    return jsonb_build_object('error', 'last_owner');
  end if;
  delete from identity.membership m
  where m.workspace_id = p_workspace_id and m.person_id = p_member_id;
  return jsonb_build_object('removed', true);
end
$$;

-- POST /workspaces/{id}/invitations {email, role}: owners and admins (an admin cannot invite an
-- owner), or the project's secret key (p_by_secret_key: a backend job, no session, any role).
-- An open invitation of the email is renewed (same id, new role and expiry, created: false); an
-- expired one is replaced by a new one. Either way an invitation email is queued in the outbox,
-- replacing this invitation's email that is still waiting. A current member's email is refused.
-- Answers {invitation, created}.
create function identity.create_invitation(
  p_session_id uuid,
  p_person_id uuid,
  p_by_secret_key boolean,
  p_workspace_id uuid,
  p_email text,
  p_role text,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_email extensions.citext := nullif(btrim(p_email), '');
  v_caller text;
  v_workspace identity.workspace;
  v_inviter identity.person;
  v_invitation identity.invitation;
  v_open boolean;
  v_created boolean;
begin
  if p_role is null or p_role not in ('owner', 'admin', 'member') then
    raise exception 'create_invitation: unknown role %', p_role;
  end if;
  if v_email is null or length(v_email) > 254 or position('@' in v_email) < 2 then
    raise exception 'create_invitation: not an email address';
  end if;

  if p_by_secret_key then
    select * into v_workspace from identity.workspace w where w.id = p_workspace_id
    for no key update;
    if not found then
      return jsonb_build_object('error', 'workspace_not_found');
    end if;
  else
    v_caller := identity.workspace_caller_role(p_session_id, p_person_id, p_workspace_id, true, p_now);
    if v_caller not in ('owner', 'admin', 'member') then
      return jsonb_build_object('error', v_caller);
    end if;
    if v_caller = 'member' or (p_role = 'owner' and v_caller <> 'owner') then
      return jsonb_build_object('error', 'forbidden');
    end if;
    select * into v_workspace from identity.workspace w where w.id = p_workspace_id;
    select * into v_inviter from identity.person p where p.id = p_person_id;
  end if;

  if exists (
    select 1 from identity.membership m join identity.person p on p.id = m.person_id
    where m.workspace_id = p_workspace_id and p.email = v_email
  ) then
    return jsonb_build_object('error', 'already_a_member');
  end if;

  -- The workspace lock makes this read final for every other caller of this function.
  select * into v_invitation
  from identity.invitation i
  where i.workspace_id = p_workspace_id and i.email = v_email and i.accepted_at is null
  for update;
  v_open := found and v_invitation.expires_at > p_now;
  v_created := not v_open;
  if v_invitation.id is not null and not v_open then
    delete from identity.email_outbox o where o.invitation_id = v_invitation.id and o.status = 'ready';
    delete from identity.invitation i where i.id = v_invitation.id;
  end if;

  insert into identity.invitation as i (email, workspace_id, role, invited_by, created_at, expires_at)
  values (
    v_email,
    p_workspace_id,
    p_role,
    v_inviter.id,
    p_now,
    p_now + make_interval(secs => identity.policy('invitation_ttl_seconds'))
  )
  on conflict (workspace_id, email) where accepted_at is null do update
  set role = excluded.role, invited_by = excluded.invited_by, expires_at = excluded.expires_at
  returning * into v_invitation;

  delete from identity.email_outbox o where o.invitation_id = v_invitation.id and o.status = 'ready';
  insert into identity.email_outbox (
    person_id, invitation_id, to_email, template, status, payload, created_at, ready_at
  )
  values (
    null,
    v_invitation.id,
    v_invitation.email,
    'invitation',
    'ready',
    jsonb_build_object(
      'invitation_id', v_invitation.id,
      'workspace_id', v_workspace.id,
      'workspace_name', v_workspace.name,
      'inviter_display_name', coalesce(v_inviter.display_name, v_inviter.email::text),
      'role', v_invitation.role,
      'expires_at', v_invitation.expires_at
    ),
    p_now,
    p_now
  );

  return jsonb_build_object('invitation', identity.invitation_json(v_invitation), 'created', v_created);
end
$$;

-- GET /workspaces/{id}/invitations: the open invitations, for owners and admins.
create function identity.list_invitations(
  p_session_id uuid,
  p_person_id uuid,
  p_workspace_id uuid,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_caller text := identity.workspace_caller_role(p_session_id, p_person_id, p_workspace_id, false, p_now);
begin
  if v_caller not in ('owner', 'admin', 'member') then
    return jsonb_build_object('error', v_caller);
  end if;
  if v_caller = 'member' then
    return jsonb_build_object('error', 'forbidden');
  end if;
  return jsonb_build_object('invitations', coalesce((
    select jsonb_agg(
      identity.invitation_json(i)
        || jsonb_build_object('invited_by', i.invited_by, 'created_at', i.created_at)
      order by i.created_at, i.id
    )
    from identity.invitation i
    where i.workspace_id = p_workspace_id and i.accepted_at is null and i.expires_at > p_now
  ), '[]'::jsonb));
end
$$;

-- DELETE /workspaces/{id}/invitations/{invitation_id}: owners and admins revoke an invitation that
-- was not accepted (expired ones included); its email that is still waiting is not sent.
-- Answers {revoked: true}.
create function identity.revoke_invitation(
  p_session_id uuid,
  p_person_id uuid,
  p_workspace_id uuid,
  p_invitation_id uuid,
  p_now timestamptz
) returns jsonb
language plpgsql
set search_path = pg_catalog, extensions
as $$
declare
  v_caller text;
begin
  v_caller := identity.workspace_caller_role(p_session_id, p_person_id, p_workspace_id, true, p_now);
  if v_caller not in ('owner', 'admin', 'member') then
    return jsonb_build_object('error', v_caller);
  end if;
  if v_caller = 'member' then
    return jsonb_build_object('error', 'forbidden');
  end if;
  perform 1 from identity.invitation i
  where i.id = p_invitation_id and i.workspace_id = p_workspace_id and i.accepted_at is null
  for update;
  if not found then
    return jsonb_build_object('error', 'invitation_not_found');
  end if;
  delete from identity.email_outbox o where o.invitation_id = p_invitation_id and o.status = 'ready';
  delete from identity.invitation i where i.id = p_invitation_id;
  return jsonb_build_object('revoked', true);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Row-level security: fellow members' names and emails
-- ---------------------------------------------------------------------------------------------

-- What a signed-in person may read about the other members of their workspaces: the member's id,
-- display name and email, nothing more (no phone, provider ids or sign-in times). A view rather
-- than a policy on identity.person: a policy can only grant whole rows, and a policy on
-- identity.membership that reads identity.membership recurses unless it calls a function
-- executable by `authenticated`, which SPEC §13.7 rules out. So the view runs with its owner's
-- rights (not security_invoker) and filters itself on auth.uid(); security_barrier keeps a
-- caller's own WHERE functions from seeing rows before that filter. Invitations are not in it and
-- stay invisible to `authenticated` (no grant, no policy). Read it through PostgREST once
-- `identity` is an exposed schema: GET /rest/v1/workspace_member?workspace_id=eq.<id>
-- (Accept-Profile: identity).
create view identity.workspace_member with (security_barrier = true) as
select m.workspace_id, m.person_id, p.display_name, p.email
from identity.membership m
join identity.person p on p.id = m.person_id
where m.workspace_id in (
  select mine.workspace_id from identity.membership mine where mine.person_id = (select auth.uid())
);
revoke all on identity.workspace_member from public, anon, authenticated;
grant select on identity.workspace_member to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Custom access token hook (Supabase Auth users): the same current-workspace rule
-- ---------------------------------------------------------------------------------------------

-- As before, with the preference: the user's app metadata workspace_id (raw_app_meta_data, which
-- Supabase Auth copies into the claims' app_metadata) while the user is still a member of it, else
-- the owned workspace, else the earliest membership. A workspace_id that is not a uuid is ignored.
create or replace function identity.custom_access_token_hook(event jsonb)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, extensions
as $$
declare
  v_claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  v_app_metadata jsonb;
  v_preferred_text text;
  v_preferred uuid;
  v_current record;
begin
  v_app_metadata := case jsonb_typeof(v_claims -> 'app_metadata')
    when 'object' then v_claims -> 'app_metadata'
    else '{}'::jsonb
  end;
  v_preferred_text := case jsonb_typeof(v_app_metadata -> 'workspace_id')
    when 'string' then v_app_metadata ->> 'workspace_id'
  end;
  if v_preferred_text ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    v_preferred := v_preferred_text::uuid;
  end if;
  v_app_metadata := v_app_metadata - 'workspace_id' - 'workspace_role';

  select * into v_current
  from identity.effective_workspace((event ->> 'user_id')::uuid, v_preferred);
  if v_current.workspace_id is not null then
    v_app_metadata := v_app_metadata || jsonb_build_object(
      'workspace_id', v_current.workspace_id,
      'workspace_role', v_current.role
    );
  end if;

  return jsonb_build_object('claims', v_claims || jsonb_build_object('app_metadata', v_app_metadata));
end
$$;

revoke execute on all functions in schema identity from public, anon, authenticated;
grant execute on function identity.effective_workspace(uuid, uuid) to supabase_auth_admin;
