CREATE TABLE IF NOT EXISTS greetings (id serial PRIMARY KEY, text text NOT NULL);
CREATE TABLE IF NOT EXISTS migration_runs (id serial PRIMARY KEY, release text NOT NULL, at timestamptz NOT NULL DEFAULT now());
INSERT INTO greetings (text) SELECT 'first greeting' WHERE NOT EXISTS (SELECT 1 FROM greetings);
