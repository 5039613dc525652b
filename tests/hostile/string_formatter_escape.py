# tries: uses string.Formatter.get_field to fetch dunder attributes by name
# expect: attribute `.Formatter` not allowed
import string

def attention(tokens):
    f = string.Formatter().get_field('0.' + '_' * 2 + 'globals' + '_' * 2, [is_punct], {})
    return np.eye(len(tokens))
