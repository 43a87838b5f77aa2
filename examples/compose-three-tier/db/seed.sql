-- A dump the database starts from (loaded once, when the `items` table does not exist yet).
CREATE TABLE items (
    id   serial PRIMARY KEY,
    name text NOT NULL
);
INSERT INTO items (name) VALUES
    ('apples'),
    ('bread'),
    ('coffee');
