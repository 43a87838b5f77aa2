CREATE TABLE todos (id serial PRIMARY KEY, title text NOT NULL, done boolean NOT NULL DEFAULT false);
INSERT INTO todos (title) VALUES ('deploy with provision');
