-- res_deviceuser: tables for `storage = realtime` (PostgreSQL).
--
-- Map the families in extconfig.conf (res_config_pgsql reads res_pgsql.conf for the
-- connection):
--   [settings]
--   deviceuser_bindings => pgsql,general,deviceuser_bindings
--   deviceuser_nodes => pgsql,general,deviceuser_nodes
-- and, to keep users and devices in the database too (static realtime):
--   res_deviceuser.conf => pgsql,general,deviceuser_config
--
-- Load with: psql -d asterisk -f contrib/realtime/postgresql.sql

-- Who is logged in where: one row per bound device. `device` is the table's unique key:
-- a login on an empty device is an INSERT (of two nodes inserting the same device, the
-- second is refused); every other change is an UPDATE or DELETE conditioned on the user
-- the node saw on the device, so a node that did not see another node's change writes
-- nothing, reads the table again and decides again.
CREATE TABLE deviceuser_bindings (
    device    VARCHAR(64) PRIMARY KEY,
    userid    VARCHAR(64) NOT NULL DEFAULT '',
    -- When the user logged in (unix seconds).
    since     BIGINT NOT NULL DEFAULT 0,
    -- 1 when the row is the user's one login (multiple_logins = no or replace).
    exclusive INTEGER NOT NULL DEFAULT 0,
    -- The node that wrote the row last.
    node      VARCHAR(80) NOT NULL DEFAULT ''
);

-- multiple_logins = no / replace across nodes: a user holds at most one exclusive row,
-- so of two nodes logging the same user in at once exactly one succeeds.
CREATE UNIQUE INDEX deviceuser_bindings_one_login
    ON deviceuser_bindings (userid) WHERE exclusive = 1;

-- The marker row: Asterisk's realtime API answers "no rows" and "query failed" alike; with
-- this row always there, an empty answer is a failure. (The module creates it if missing.)
INSERT INTO deviceuser_bindings (device) VALUES ('/');

-- One row per node: its heartbeat. `beat` changes every second while the node runs; the
-- others judge with their own clocks how long it has not changed (node_timeout).
CREATE TABLE deviceuser_nodes (
    node VARCHAR(80) PRIMARY KEY,
    -- The node's Asterisk entity id, under which its user states are distributed.
    eid  VARCHAR(20) NOT NULL DEFAULT '',
    beat BIGINT NOT NULL DEFAULT 0
);

-- Optional: res_deviceuser.conf itself in the database (Asterisk's static realtime
-- layout). One row per option: category = section name, var_name/var_val = option.
-- Sections come in descending cat_metric order, options in ascending var_metric order.
CREATE TABLE deviceuser_config (
    id         SERIAL PRIMARY KEY,
    cat_metric INTEGER NOT NULL DEFAULT 0,
    var_metric INTEGER NOT NULL DEFAULT 0,
    commented  INTEGER NOT NULL DEFAULT 0,
    filename   VARCHAR(128) NOT NULL DEFAULT 'res_deviceuser.conf',
    category   VARCHAR(128) NOT NULL,
    var_name   VARCHAR(128) NOT NULL,
    var_val    VARCHAR(255) NOT NULL
);

-- Optional: wrong PINs shared by every node, so that a lockout (max_login_failures within
-- lockout_window) holds wherever the user tries next. One row per wrong PIN; a right PIN
-- deletes the user's rows; rows older than lockout_window + lockout_time no longer count
-- and may be deleted at will. Map it in extconfig.conf:
--   deviceuser_pin_failures => pgsql,general,deviceuser_pin_failures
CREATE TABLE deviceuser_pin_failures (
    userid    VARCHAR(64) NOT NULL,
    failed_at BIGINT NOT NULL,
    node      VARCHAR(80) NOT NULL DEFAULT ''
);
CREATE INDEX deviceuser_pin_failures_user ON deviceuser_pin_failures (userid, failed_at);
