#!/bin/sh
# The example app: prints its greeting. (The Docker deploy turns this into a web service.)
. "$(dirname "$0")/../.env"
echo "hello on port ${PORT}"
