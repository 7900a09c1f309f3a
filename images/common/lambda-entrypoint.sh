#!/bin/sh
# lambda-testkit stand-in for /lambda-entrypoint.sh of the AWS Lambda base
# images (public.ecr.aws/lambda/*). Same contract:
#
#   /lambda-entrypoint.sh <handler>
#
# exactly one argument (the handler, normally given as the image's CMD),
# exported as _HANDLER, then exec of the runtime's /var/runtime/bootstrap.
#
# The real script runs /usr/local/bin/aws-lambda-rie (the Runtime Interface
# Emulator) when AWS_LAMBDA_RUNTIME_API is unset. These stand-ins ship no RIE:
# lambda-testkit serves the Runtime API itself and always sets
# AWS_LAMBDA_RUNTIME_API, so without it there is nothing to talk to.

if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"

RUNTIME_ENTRYPOINT=/var/runtime/bootstrap
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
  echo "lambda-entrypoint: AWS_LAMBDA_RUNTIME_API is not set, and this lambda-testkit stand-in image has no Runtime Interface Emulator (aws-lambda-rie); run it through lambda-testkit, which serves the Runtime API" 1>&2
  exit 1
fi
exec "$RUNTIME_ENTRYPOINT"
